package inventory

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/netrule"
)

const (
	webNSG = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/demo-rg/providers/Microsoft.Network/networkSecurityGroups/web-01-nsg"
	webNIC = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/demo-rg/providers/Microsoft.Network/networkInterfaces/web-01-nic"
	webVM  = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/demo-rg/providers/Microsoft.Compute/virtualMachines/web-01"
)

func TestSampleValidates(t *testing.T) {
	if err := Validate(Sample()); err != nil {
		t.Fatal(err)
	}
}

func TestSamplePublicAddressesAreBenchmarkingRange(t *testing.T) {
	bench := netip.MustParsePrefix("198.18.0.0/15")
	private := netip.MustParsePrefix("10.0.0.0/8")
	inv := Sample()
	for _, n := range inv.NICs {
		for _, a := range n.PublicIPs {
			if !bench.Contains(a) {
				t.Errorf("NIC %s public address %s is outside 198.18.0.0/15", n.ID, a)
			}
		}
		for _, a := range n.PrivateIPs {
			if !private.Contains(a) {
				t.Errorf("NIC %s private address %s is outside 10.0.0.0/8", n.ID, a)
			}
		}
	}
	for _, e := range inv.ENIs {
		if e.PublicIP.IsValid() && !bench.Contains(e.PublicIP) {
			t.Errorf("ENI %s public address %s is outside 198.18.0.0/15", e.ID, e.PublicIP)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Inventory)
		want string
	}{
		{"priority out of range", func(inv *Inventory) { inv.NSGs[0].SecurityRules[0].Priority = 5000 },
			`networkSecurityGroups[0] (id "` + webNSG + `"): securityRules[0] (name "AllowSSHFromInternet"): priority: 5000 is outside the range 100-4096`},
		{"duplicate priority in a direction", func(inv *Inventory) { inv.NSGs[0].SecurityRules[1].Priority = 1000 },
			`securityRules[1] (name "AllowHTTPS"): priority: duplicate priority 1000 for Inbound rules: securityRules[0] (name "AllowSSHFromInternet") has it too`},
		{"duplicate rule name", func(inv *Inventory) { inv.NSGs[0].SecurityRules[1].Name = "allowsshfrominternet" },
			`securityRules[1] (name "allowsshfrominternet"): name: duplicate rule name: securityRules[0] has the same name`},
		{"invalid protocol", func(inv *Inventory) { inv.NSGs[0].SecurityRules[0].Protocol = "Gre" },
			`securityRules[0] (name "AllowSSHFromInternet"): protocol: protocol "Gre" is not one of Tcp, Udp, Icmp, *`},
		{"invalid access", func(inv *Inventory) { inv.NSGs[0].SecurityRules[0].Access = "Maybe" },
			`securityRules[0] (name "AllowSSHFromInternet"): access: access "Maybe" is not one of Allow, Deny`},
		{"invalid direction", func(inv *Inventory) { inv.NSGs[0].SecurityRules[0].Direction = "Sideways" },
			`securityRules[0] (name "AllowSSHFromInternet"): direction: direction "Sideways" is not one of Inbound, Outbound`},
		{"invalid prefix", func(inv *Inventory) { inv.NSGs[0].SecurityRules[0].SourceAddressPrefix = "300.1.1.1" },
			`securityRules[0] (name "AllowSSHFromInternet"): sourceAddressPrefix: "300.1.1.1" is not an IP address`},
		{"invalid port range", func(inv *Inventory) { inv.NSGs[0].SecurityRules[0].DestinationPortRange = "22-21" },
			`securityRules[0] (name "AllowSSHFromInternet"): destinationPortRange: port range "22-21": start is after end`},
		{"NIC points to an unknown NSG", func(inv *Inventory) { inv.NICs[0].NSG = "/nsg/missing" },
			`nics[0] (id "` + webNIC + `"): networkSecurityGroup: network security group "/nsg/missing" is not in the inventory`},
		{"NIC points to an unknown subnet", func(inv *Inventory) { inv.NICs[0].Subnet = "/subnet/missing" },
			`nics[0] (id "` + webNIC + `"): subnet: subnet "/subnet/missing" is not in the inventory`},
		{"subnet points to an unknown NSG", func(inv *Inventory) { inv.Subnets[1].NSG = "/nsg/missing" },
			`subnets[1] (id "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/demo-rg/providers/Microsoft.Network/virtualNetworks/demo-vnet/subnets/app"): networkSecurityGroup: network security group "/nsg/missing" is not in the inventory`},
		{"VM points to an unknown NIC", func(inv *Inventory) { inv.VMs[0].NICs = append(inv.VMs[0].NICs, "/nic/missing") },
			`vms[0] (id "` + webVM + `"): nics[1]: network interface "/nic/missing" is not in the inventory`},
		{"VM points to an unknown ENI", func(inv *Inventory) { inv.VMs[5].ENIs = []string{"eni-missing"} },
			`vms[5] (id "/subscriptions/aws-111122223333/resourceGroups/us-east-1/providers/AWS.EC2/instances/i-0a1b2c3d4e5f60001"): enis[0]: ENI "eni-missing" is not in the inventory`},
		{"VM points to an unknown firewall", func(inv *Inventory) { inv.VMs[0].Firewall = "/fw/missing" },
			`vms[0] (id "` + webVM + `"): firewall: firewall "/fw/missing" is not in the inventory`},
		{"ENI points to an unknown security group", func(inv *Inventory) { inv.ENIs[1].SecurityGroups[0] = "sg-missing" },
			`enis[1] (id "eni-0a1b2c3d4e5f60002"): securityGroups[0]: security group "sg-missing" is not in the inventory`},
		{"ENI with six security groups", func(inv *Inventory) {
			inv.ENIs[2].SecurityGroups = append(inv.ENIs[2].SecurityGroups, "sg-0a1b2c3d4e5f60006")
			inv.SecurityGroups = append(inv.SecurityGroups, netrule.SecurityGroup{GroupID: "sg-0a1b2c3d4e5f60006", GroupName: "six"})
		}, `enis[2] (id "eni-0a1b2c3d4e5f60003"): securityGroups: 6 security groups attached; AWS allows at most 5 per network interface`},
		{"duplicate VM id (case-insensitive)", func(inv *Inventory) { inv.VMs[1].ID = strings.ToUpper(webVM) },
			`vms[1] (id "` + strings.ToUpper(webVM) + `"): id: duplicate id: another vm has the same id`},
		{"duplicate NSG id", func(inv *Inventory) { inv.NSGs[1].ID = webNSG },
			`networkSecurityGroups[1] (id "` + webNSG + `"): id: duplicate id`},
		{"missing id", func(inv *Inventory) { inv.Firewalls[0].ID = "" },
			`firewalls[0] (id ""): id: id is required`},
		{"VM id is not a resource ID", func(inv *Inventory) { inv.VMs[2].ID = "db-01" },
			`vms[2] (id "db-01"): id: resource ID "db-01" must start with /subscriptions/`},
		{"VM id is a scope", func(inv *Inventory) { inv.VMs[2].ID = "/subscriptions/s1/resourceGroups/rg" },
			`vms[2] (id "/subscriptions/s1/resourceGroups/rg"): id: "/subscriptions/s1/resourceGroups/rg" is a scope, not a resource ID`},
		{"unknown cloud", func(inv *Inventory) { inv.VMs[0].Cloud = "gcp" },
			`vms[0] (id "` + webVM + `"): cloud: cloud "gcp" is not one of azure, aws, host`},
		{"missing cloud", func(inv *Inventory) { inv.VMs[0].Cloud = "" },
			`vms[0] (id "` + webVM + `"): cloud: cloud is required`},
		{"unknown provider", func(inv *Inventory) { inv.VMs[0].Provider = "terraform" },
			`vms[0] (id "` + webVM + `"): provider: provider "terraform" is not one of sim, nftables, azure, aws`},
		{"AWS permission with a bad protocol", func(inv *Inventory) { inv.SecurityGroups[0].IPPermissions[0].IPProtocol = "tcpx" },
			`securityGroups[0] (id "sg-0a1b2c3d4e5f60001"): IpPermissions[0]: IpProtocol: protocol "tcpx" is not`},
		{"AWS permission with bad ports", func(inv *Inventory) { inv.SecurityGroups[0].IPPermissions[0].ToPort = 70000 },
			`securityGroups[0] (id "sg-0a1b2c3d4e5f60001"): IpPermissions[0]: ToPort: 70000 is not a port number (0-65535)`},
		{"AWS permission with a bad CIDR", func(inv *Inventory) { inv.SecurityGroups[0].IPPermissions[0].IPRanges[0].CidrIP = "0.0.0.0/99" },
			`securityGroups[0] (id "sg-0a1b2c3d4e5f60001"): IpPermissions[0]: IpRanges[0].CidrIp: "0.0.0.0/99" is not a CIDR prefix`},
		{"subnet prefix with host bits", func(inv *Inventory) { inv.Subnets[0].AddressPrefix = netip.MustParsePrefix("10.0.1.7/24") },
			`addressPrefix: 10.0.1.7/24 has host bits set; the prefix is 10.0.1.0/24`},
		{"setting scope is a resource", func(inv *Inventory) { inv.Settings = []Setting{{Scope: webVM, JITDisabled: true}} },
			`settings[0] (scope "` + webVM + `"): scope: "` + webVM + `" is not a subscription or resource group scope`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := Sample()
			tt.mod(&inv)
			err := Validate(inv)
			if err == nil {
				t.Fatalf("Validate accepted the inventory; want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n  %v\nwant it to contain:\n  %s", err, tt.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	inv := Sample()
	inv.NSGs[0].SecurityRules[0].Priority = 50
	inv.NICs[1].NSG = "/nsg/missing"
	err := Validate(inv)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a *ValidationError", err)
	}
	if len(ve.Problems) != 2 {
		t.Fatalf("problems = %d (%v), want 2", len(ve.Problems), ve.Problems)
	}
	if !strings.HasPrefix(err.Error(), "invalid inventory (2 problems): ") {
		t.Errorf("message = %q", err.Error())
	}
}
