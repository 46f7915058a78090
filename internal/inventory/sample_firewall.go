package inventory

import (
	"net/netip"

	"github.com/drawbridge/drawbridge/internal/netrule"
)

// SampleClassicFirewall is a document to apply on top of Sample(): VM
// jump-01 (10.0.4.4, no public IP) in demo-vnet, reached from the internet
// only through edge-fw, a classic Azure Firewall (rules, not a policy) with
// public IP 198.18.0.20 and AzureFirewallSubnet 10.0.250.0/26. Its user
// DNAT collection "inbound" forwards RDP (3389) from anywhere to jump-01,
// which exposes it, and SSH (22) of the public IP from a partner range to
// an appliance, so a JIT DNAT rule for SSH must listen on another port.
// jump-01-nsg has no rule of its own: Azure's default AllowVnetInBound lets
// the firewall (inside the virtual network) in.
func SampleClassicFirewall() Inventory {
	azure := "/subscriptions/" + SampleSubscription + "/resourceGroups/" + SampleResourceGroup + "/providers/"
	vnet := azure + "Microsoft.Network/virtualNetworks/demo-vnet"
	fwSubnet := vnet + "/subnets/AzureFirewallSubnet"
	nic := azure + "Microsoft.Network/networkInterfaces/jump-01-nic"
	nsg := azure + "Microsoft.Network/networkSecurityGroups/jump-01-nsg"
	fw := azure + "Microsoft.Network/azureFirewalls/edge-fw"
	public := netip.MustParseAddr("198.18.0.20")
	dnat := func(name, src, port, to string) NatRule {
		return NatRule{Name: name, SourceAddresses: []string{src}, DestinationAddresses: []string{public.String()}, DestinationPorts: []string{port},
			Protocols: []string{"TCP"}, TranslatedAddress: to, TranslatedPort: port}
	}
	return Inventory{
		VMs: []VM{{ID: azure + "Microsoft.Compute/virtualMachines/jump-01", Name: "jump-01", Cloud: Azure, Provider: ProviderSim,
			Location: SampleLocation, NICs: []string{nic}, Firewall: fw}},
		NICs:            []NIC{{ID: nic, Subnet: vnet + "/subnets/jump", NSG: nsg, PrivateIPs: []netip.Addr{netip.MustParseAddr("10.0.4.4")}}},
		VirtualNetworks: []VirtualNetwork{{ID: vnet, AddressSpace: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}}},
		Subnets: []Subnet{
			{ID: vnet + "/subnets/jump", AddressPrefix: netip.MustParsePrefix("10.0.4.0/24")},
			{ID: fwSubnet, AddressPrefix: netip.MustParsePrefix("10.0.250.0/26")},
		},
		NSGs: []netrule.NSG{{ID: nsg, Name: "jump-01-nsg", Location: SampleLocation}},
		Firewalls: []Firewall{{ID: fw, PublicIPs: []netip.Addr{public}, SubnetPrefix: netip.MustParsePrefix("10.0.250.0/26"), Subnet: fwSubnet,
			NatRuleCollections: []NatRuleCollection{{Name: "inbound", Priority: 100, Action: "Dnat", Rules: []NatRule{
				dnat("rdp-jump", "*", "3389", "10.0.4.4"),
				dnat("ssh-appliance", "203.0.113.0/24", "22", "10.0.4.9"),
			}}}}},
	}
}
