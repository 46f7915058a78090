package inventory

import (
	"net/netip"

	"github.com/drawbridge/drawbridge/internal/netrule"
)

// Sample identifiers, for the demo, docs and tests that talk about the
// built-in inventory.
const (
	SampleSubscription  = "00000000-0000-0000-0000-000000000001"
	SampleResourceGroup = "demo-rg"
	SampleLocation      = "westeurope"
	SampleAWSAccount    = "111122223333"
	SampleAWSRegion     = "us-east-1"
)

// Sample returns the built-in inventory that `drawbridge demo` and a server
// started without an inventory use. Each machine shows one case of the
// assessment and of enforcement:
//
// Azure (subscription SampleSubscription, resource group demo-rg, virtual
// network demo-vnet 10.0.0.0/16):
//   - web-01: NIC NSG web-01-nsg allows SSH (22) from Internet: exposed.
//   - win-01: NIC NSG win-01-nsg has the user's rule AllowRDPFromCorp
//     (3389 from 203.0.113.0/24, priority 300): exposed to that range, and a
//     rule JIT's deny rule must stay behind.
//   - db-01: no NSG on its NIC or its subnet: JIT has nothing to enforce in.
//   - fw-01: behind demo-fw, an Azure Firewall managed by Firewall Manager.
//   - app-01: subnet NSG app-subnet-nsg allows only HTTPS from Internet.
//
// AWS (account 111122223333, us-east-1):
//   - bastion: security group ssh-open allows 22 from 0.0.0.0/0: exposed.
//   - worker: internal-all allows 0-65535 from 10.0.0.0/8 only.
//   - crowded: five security groups on its ENI already (AWS's default quota),
//     one of them ssh-open: exposed, and no room for a grant's group.
//
// Private addresses are from 10.0.0.0/8; public addresses only from the
// benchmarking range 198.18.0.0/15, never real internet space.
func Sample() Inventory {
	azure := "/subscriptions/" + SampleSubscription + "/resourceGroups/" + SampleResourceGroup + "/providers/"
	vnet := azure + "Microsoft.Network/virtualNetworks/demo-vnet"
	subnet := func(name string) string { return vnet + "/subnets/" + name }
	nic := func(name string) string { return azure + "Microsoft.Network/networkInterfaces/" + name }
	nsg := func(name string) string { return azure + "Microsoft.Network/networkSecurityGroups/" + name }
	vm := func(name string, nics ...string) VM {
		return VM{ID: azure + "Microsoft.Compute/virtualMachines/" + name, Name: name, Cloud: Azure,
			Provider: ProviderSim, Location: SampleLocation, NICs: nics}
	}
	ip := netip.MustParseAddr
	allow := func(name string, prio int, src, port string) netrule.SecurityRule {
		return netrule.SecurityRule{Name: name, Priority: prio, Direction: netrule.Inbound, Access: netrule.Allow,
			Protocol: netrule.Tcp, SourceAddressPrefix: src, SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: port}
	}
	firewall := azure + "Microsoft.Network/azureFirewalls/demo-fw"

	fw := vm("fw-01", nic("fw-01-nic"))
	fw.Firewall = firewall

	aws := "/subscriptions/aws-" + SampleAWSAccount + "/resourceGroups/" + SampleAWSRegion + "/providers/AWS.EC2/instances/"
	instance := func(n, name string) VM {
		return VM{ID: aws + "i-0a1b2c3d4e5f6000" + n, Name: name, Cloud: AWS, Provider: ProviderSim,
			Location: SampleAWSRegion, InstanceID: "i-0a1b2c3d4e5f6000" + n, ENIs: []string{"eni-0a1b2c3d4e5f6000" + n}}
	}
	const (
		sgSSH     = "sg-0a1b2c3d4e5f60001"
		sgIntern  = "sg-0a1b2c3d4e5f60002"
		sgWeb     = "sg-0a1b2c3d4e5f60003"
		sgMonitor = "sg-0a1b2c3d4e5f60004"
		sgBackup  = "sg-0a1b2c3d4e5f60005"
		vpc       = "vpc-0a1b2c3d4e5f60001"
	)
	tcp := func(from, to int, cidrs ...string) netrule.IPPermission {
		p := netrule.IPPermission{IPProtocol: "tcp", FromPort: from, ToPort: to}
		for _, c := range cidrs {
			if netip.MustParsePrefix(c).Addr().Is4() {
				p.IPRanges = append(p.IPRanges, netrule.IPRange{CidrIP: c})
			} else {
				p.IPv6Ranges = append(p.IPv6Ranges, netrule.IPv6Range{CidrIPv6: c})
			}
		}
		return p
	}

	return Inventory{
		VMs: []VM{
			vm("web-01", nic("web-01-nic")),
			vm("win-01", nic("win-01-nic")),
			vm("db-01", nic("db-01-nic")),
			fw,
			vm("app-01", nic("app-01-nic")),
			instance("1", "bastion"),
			instance("2", "worker"),
			instance("3", "crowded"),
		},
		NICs: []NIC{
			{ID: nic("web-01-nic"), Subnet: subnet("web"), NSG: nsg("web-01-nsg"), PrivateIPs: []netip.Addr{ip("10.0.1.4")}, PublicIPs: []netip.Addr{ip("198.18.0.10")}},
			{ID: nic("win-01-nic"), Subnet: subnet("web"), NSG: nsg("win-01-nsg"), PrivateIPs: []netip.Addr{ip("10.0.1.5")}, PublicIPs: []netip.Addr{ip("198.18.0.11")}},
			{ID: nic("db-01-nic"), Subnet: subnet("web"), PrivateIPs: []netip.Addr{ip("10.0.1.6")}},
			{ID: nic("fw-01-nic"), Subnet: subnet("workload"), NSG: nsg("fw-01-nsg"), PrivateIPs: []netip.Addr{ip("10.0.3.4")}},
			{ID: nic("app-01-nic"), Subnet: subnet("app"), PrivateIPs: []netip.Addr{ip("10.0.2.4")}, PublicIPs: []netip.Addr{ip("198.18.0.12")}},
		},
		VirtualNetworks: []VirtualNetwork{{ID: vnet, AddressSpace: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}}},
		Subnets: []Subnet{
			{ID: subnet("web"), AddressPrefix: netip.MustParsePrefix("10.0.1.0/24")},
			{ID: subnet("app"), AddressPrefix: netip.MustParsePrefix("10.0.2.0/24"), NSG: nsg("app-subnet-nsg")},
			{ID: subnet("workload"), AddressPrefix: netip.MustParsePrefix("10.0.3.0/24")},
		},
		NSGs: []netrule.NSG{
			{ID: nsg("web-01-nsg"), Name: "web-01-nsg", Location: SampleLocation, SecurityRules: []netrule.SecurityRule{
				allow("AllowSSHFromInternet", 1000, netrule.TagInternet, "22"),
				allow("AllowHTTPS", 1010, netrule.TagInternet, "443"),
			}},
			{ID: nsg("win-01-nsg"), Name: "win-01-nsg", Location: SampleLocation, SecurityRules: []netrule.SecurityRule{
				allow("AllowRDPFromCorp", 300, "203.0.113.0/24", "3389"),
			}},
			{ID: nsg("fw-01-nsg"), Name: "fw-01-nsg", Location: SampleLocation, SecurityRules: []netrule.SecurityRule{
				allow("AllowSSHFromVnet", 200, netrule.TagVirtualNetwork, "22"),
			}},
			{ID: nsg("app-subnet-nsg"), Name: "app-subnet-nsg", Location: SampleLocation, SecurityRules: []netrule.SecurityRule{
				allow("AllowHTTPSFromInternet", 100, netrule.TagInternet, "443"),
			}},
		},
		Firewalls: []Firewall{{ID: firewall, ManagedByFirewallManager: true}},
		ENIs: []ENI{
			{ID: "eni-0a1b2c3d4e5f60001", SubnetID: "subnet-0a1b2c3d4e5f60001", PrivateIPs: []netip.Addr{ip("10.1.0.10")}, PublicIP: ip("198.18.1.10"),
				SecurityGroups: []string{sgSSH, sgWeb}},
			{ID: "eni-0a1b2c3d4e5f60002", SubnetID: "subnet-0a1b2c3d4e5f60001", PrivateIPs: []netip.Addr{ip("10.1.0.11")},
				SecurityGroups: []string{sgIntern}},
			{ID: "eni-0a1b2c3d4e5f60003", SubnetID: "subnet-0a1b2c3d4e5f60001", PrivateIPs: []netip.Addr{ip("10.1.0.12")}, PublicIP: ip("198.18.1.12"),
				SecurityGroups: []string{sgSSH, sgIntern, sgWeb, sgMonitor, sgBackup}},
		},
		SecurityGroups: []netrule.SecurityGroup{
			{GroupID: sgSSH, GroupName: "ssh-open", Description: "SSH from anywhere", VpcID: vpc,
				IPPermissions: []netrule.IPPermission{tcp(22, 22, "0.0.0.0/0")}},
			{GroupID: sgIntern, GroupName: "internal-all", Description: "every TCP port from the private network", VpcID: vpc,
				IPPermissions: []netrule.IPPermission{tcp(0, 65535, "10.0.0.0/8")}},
			{GroupID: sgWeb, GroupName: "web", Description: "HTTP and HTTPS from anywhere", VpcID: vpc,
				IPPermissions: []netrule.IPPermission{tcp(80, 80, "0.0.0.0/0", "::/0"), tcp(443, 443, "0.0.0.0/0", "::/0")}},
			{GroupID: sgMonitor, GroupName: "monitoring", Description: "node exporter from the VPC", VpcID: vpc,
				IPPermissions: []netrule.IPPermission{tcp(9100, 9100, "10.1.0.0/16")}},
			{GroupID: sgBackup, GroupName: "backup", Description: "rsync from the VPC", VpcID: vpc,
				IPPermissions: []netrule.IPPermission{tcp(873, 873, "10.1.0.0/16")}},
		},
	}
}
