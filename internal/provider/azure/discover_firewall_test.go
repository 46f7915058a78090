package azure_test

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/cloudsim/armsim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/azure"
	"github.com/drawbridge/drawbridge/internal/provider/providertest"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
)

const confSub = "00000000-0000-0000-0000-00000000c0f0"

// TestDiscoverLinksFirewallByDNATAndGrantTakesThePath: discovery reads the
// classic firewall (public IP, AzureFirewallSubnet prefix, NAT rules),
// links the VM a DNAT rule translates to, and a grant on the discovered VM
// adds a DNAT rule through the provider.
func TestDiscoverLinksFirewallByDNATAndGrantTakesThePath(t *testing.T) {
	s := startSim(t, armsim.Options{PageSize: 2})
	want := providertest.Inventory()
	s.Load(want)
	got, err := azure.Discover(context.Background(), armsim.StaticToken("t"), s.ClientOptions(), azure.Scope{Subscription: confSub})
	if err != nil {
		t.Fatal(err)
	}
	if err := inventory.Validate(got); err != nil {
		t.Fatalf("discovered inventory is invalid: %v", err)
	}
	if !reflect.DeepEqual(got.Firewalls, want.Firewalls) {
		t.Errorf("firewalls\n got %+v\nwant %+v", got.Firewalls, want.Firewalls)
	}
	var behind inventory.VM
	for _, vm := range got.VMs {
		wantFW := ""
		if vm.Name == "vm-f" {
			wantFW, behind = providertest.FirewallID, vm
		}
		if inventory.Key(vm.Firewall) != inventory.Key(wantFW) {
			t.Errorf("%s: firewall %q, want %q", vm.Name, vm.Firewall, wantFW)
		}
	}
	p := newProvider(t, s)
	src, _ := jit.ParseSource("198.51.100.7")
	d := jit.Desired{VMID: behind.ID, Guarded: []jit.GuardedPort{{Port: 22, Protocol: netrule.Tcp}},
		Grants: []jit.DesiredGrant{{GrantID: "g1", Port: 22, Protocol: netrule.Tcp, Source: src, End: time.Now().Add(time.Hour)}}}
	if _, err := p.Apply(context.Background(), behind, d); err != nil {
		t.Fatal(err)
	}
	fw := wireCloud{s}.Firewall(t, providertest.FirewallID)
	i := slices.IndexFunc(fw.NatRuleCollections, func(c inventory.NatRuleCollection) bool { return c.Name == sim.FirewallCollection })
	if i < 0 || len(fw.NatRuleCollections[i].Rules) != 1 || fw.NatRuleCollections[i].Rules[0].SourceAddresses[0] != "198.51.100.7" {
		t.Fatalf("no DNAT rule from the grantee after a grant on the discovered VM: %+v", fw.NatRuleCollections)
	}
}

// TestDiscoverLinksFirewallByVNet: with no DNAT rule naming it, a VM
// without a public IP in the firewall's own virtual network is linked; one
// with a public IP, or in another virtual network, is not. A firewall
// Firewall Manager controls is linked the same way, and such a VM is
// refused by Apply.
func TestDiscoverLinksFirewallByVNet(t *testing.T) {
	rg := "/subscriptions/" + confSub + "/resourceGroups/rg/providers/"
	sub := func(vnet, name string) string {
		return rg + "Microsoft.Network/virtualNetworks/" + vnet + "/subnets/" + name
	}
	ip := netip.MustParseAddr
	vm := func(name string) inventory.VM {
		return inventory.VM{ID: rg + "Microsoft.Compute/virtualMachines/" + name, Name: name, Cloud: inventory.Azure, Provider: inventory.ProviderAzure,
			NICs: []string{rg + "Microsoft.Network/networkInterfaces/" + name + "-nic"}}
	}
	nic := func(name, subnet string, private string, public ...netip.Addr) inventory.NIC {
		return inventory.NIC{ID: rg + "Microsoft.Network/networkInterfaces/" + name + "-nic", Subnet: subnet, NSG: rg + "Microsoft.Network/networkSecurityGroups/nsg",
			PrivateIPs: []netip.Addr{ip(private)}, PublicIPs: public}
	}
	asg := netrule.SubResource{ID: rg + "Microsoft.Network/applicationSecurityGroups/web"}
	inv := inventory.Inventory{
		VMs: []inventory.VM{vm("inside"), vm("public"), vm("elsewhere")},
		NICs: []inventory.NIC{nic("inside", sub("x", "app"), "10.1.1.4"), nic("public", sub("x", "app"), "10.1.1.5", ip("198.18.9.9")),
			nic("elsewhere", sub("y", "app"), "10.2.1.4")},
		Subnets: []inventory.Subnet{{ID: sub("x", "app"), AddressPrefix: netip.MustParsePrefix("10.1.1.0/24")},
			{ID: sub("y", "app"), AddressPrefix: netip.MustParsePrefix("10.2.1.0/24")}},
		// An NSG whose rules name application security groups: kept,
		// and the sync does not fail on them.
		NSGs: []netrule.NSG{{ID: rg + "Microsoft.Network/networkSecurityGroups/nsg", Name: "nsg", SecurityRules: []netrule.SecurityRule{
			{Name: "AllowWebToASG", Priority: 100, Direction: netrule.Inbound, Access: netrule.Allow, Protocol: netrule.Tcp, SourceAddressPrefix: "Internet",
				SourcePortRange: "*", DestinationApplicationSecurityGroups: []netrule.SubResource{asg}, DestinationPortRange: "443"},
			{Name: "AllowFromASG", Priority: 110, Direction: netrule.Inbound, Access: netrule.Allow, Protocol: netrule.Tcp,
				SourceApplicationSecurityGroups: []netrule.SubResource{asg}, SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "22"},
		}}},
		Firewalls: []inventory.Firewall{{ID: rg + "Microsoft.Network/azureFirewalls/fwm", ManagedByFirewallManager: true,
			SubnetPrefix: netip.MustParsePrefix("10.1.0.0/26"), Subnet: sub("x", "AzureFirewallSubnet")}},
	}
	s := startSim(t, armsim.Options{PageSize: 2})
	s.Load(inv)
	got, err := azure.Discover(context.Background(), armsim.StaticToken("t"), s.ClientOptions(), azure.Scope{Subscription: confSub})
	if err != nil {
		t.Fatalf("sync with application security group rules: %v", err)
	}
	if err := inventory.Validate(got); err != nil {
		t.Fatalf("discovered inventory is invalid: %v", err)
	}
	if n := got.NSGs[0]; !reflect.DeepEqual(n.SecurityRules, inv.NSGs[0].SecurityRules) {
		t.Errorf("rules with application security groups\n got %+v\nwant %+v", n.SecurityRules, inv.NSGs[0].SecurityRules)
	}
	for _, v := range got.VMs {
		want := ""
		if v.Name == "inside" {
			want = inv.Firewalls[0].ID
		}
		if inventory.Key(v.Firewall) != inventory.Key(want) {
			t.Errorf("%s: firewall %q, want %q", v.Name, v.Firewall, want)
		}
		if v.Name == "inside" {
			_, err := newProvider(t, s).Apply(context.Background(), v, jit.Desired{VMID: v.ID, Guarded: []jit.GuardedPort{{Port: 22, Protocol: netrule.Tcp}}})
			if err == nil {
				t.Error("Apply on a VM behind a Firewall Manager firewall succeeded; JIT cannot protect it")
			}
		}
	}
}

// TestHoldingFindsLeftDNATRules: a JIT DNAT rule left on a firewall with
// no JIT rule on any NSG (a change cut after its firewall PUT) makes the
// VM one the resync reconciles.
func TestHoldingFindsLeftDNATRules(t *testing.T) {
	s := startSim(t, armsim.Options{PageSize: 2})
	inv := providertest.Inventory()
	s.Load(inv)
	vm := inv.VMs[len(inv.VMs)-1]
	p := newProvider(t, s)
	got, err := p.Holding(context.Background(), inv.VMs)
	if err != nil || len(got) != 0 {
		t.Fatalf("Holding before any change: %v, %v", got, err)
	}
	s.EditFirewall(providertest.FirewallID, func(pr map[string]any) {
		cs, _ := pr["natRuleCollections"].([]any)
		pr["natRuleCollections"] = append(cs, armsim.NatCollectionDoc(inventory.NatRuleCollection{Name: sim.FirewallCollection, Priority: 65000,
			Rules: []inventory.NatRule{{Name: sim.DNATRuleName(vm.ID, "g1"), SourceAddresses: []string{"198.51.100.7"}, DestinationAddresses: []string{"198.18.7.1"},
				DestinationPorts: []string{"50001"}, Protocols: []string{"TCP"}, TranslatedAddress: "10.7.3.4", TranslatedPort: "22"}}}))
	})
	got, err = p.Holding(context.Background(), inv.VMs)
	if err != nil || len(got) != 1 || inventory.Key(got[0]) != inventory.Key(vm.ID) {
		t.Fatalf("Holding with a DNAT rule left: %v, %v; want %s", got, err, vm.ID)
	}
}
