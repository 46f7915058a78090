package sim_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
)

func firewallStore(t *testing.T, inv inventory.Inventory) (*memstore.Store, storeCloud) {
	t.Helper()
	st := memstore.New()
	if err := st.ObjectTx(context.Background(), func(o store.Objects) error { return inventory.Save(context.Background(), o, inv) }); err != nil {
		t.Fatal(err)
	}
	return st, storeCloud{st}
}

// TestFirewallGrantChecks: a grant behind a classic firewall listens on a
// free public port (22 is a user's rule's), is refused when a user's DNAT
// rule forwards to the same port from sources beyond the grant's (the NSG
// allow would open it to them too), and a VM behind a Firewall Manager
// firewall cannot be enabled; moving the VM off the firewall removes its
// DNAT rule.
func TestFirewallGrantChecks(t *testing.T) {
	inv := inventory.SampleClassicFirewall()
	vm := inv.VMs[0]
	st, cloud := firewallStore(t, inv)
	p := sim.New(st)
	ctx := context.Background()
	src, _ := jit.ParseSource("198.18.0.77")
	guarded := []jit.GuardedPort{{Port: 22, Protocol: netrule.Tcp}, {Port: 3389, Protocol: netrule.Tcp}}
	g := func(id string, port int) jit.DesiredGrant {
		return jit.DesiredGrant{GrantID: id, Port: port, Protocol: netrule.Tcp, Source: src, End: time.Now().Add(time.Hour)}
	}
	if _, err := p.Apply(ctx, vm, jit.Desired{VMID: vm.ID, Guarded: guarded, Grants: []jit.DesiredGrant{g("ssh", 22)}}); err != nil {
		t.Fatal(err)
	}
	fw := cloud.Firewall(t, vm.Firewall)
	if n := len(fw.NatRuleCollections); n != 2 || fw.NatRuleCollections[1].Name != sim.FirewallCollection || fw.NatRuleCollections[1].Priority != 65000 {
		t.Fatalf("collections after the grant: %+v", fw.NatRuleCollections)
	}
	if r := fw.NatRuleCollections[1].Rules[0]; r.DestinationPorts[0] != "50000" || r.TranslatedAddress != "10.0.4.4" || r.TranslatedPort != "22" {
		t.Errorf("JIT DNAT rule %+v, want 198.18.0.20:50000 -> 10.0.4.4:22", r)
	}
	nsg := cloud.NSG(t, vm.NICs[0][:strings.Index(vm.NICs[0], "networkInterfaces")]+"networkSecurityGroups/jump-01-nsg")
	found := false
	for _, r := range nsg.SecurityRules {
		if r.Name == sim.AllowRuleName(vm.ID, "ssh") {
			found = r.SourceAddressPrefix == "10.0.250.0/26"
		}
	}
	if !found {
		t.Errorf("no NSG allow rule from the firewall subnet: %+v", nsg.SecurityRules)
	}
	_, err := p.Apply(ctx, vm, jit.Desired{VMID: vm.ID, Guarded: guarded, Grants: []jit.DesiredGrant{g("ssh", 22), g("rdp", 3389)}})
	if !errors.Is(err, sim.ErrUnprotectable) || !strings.Contains(err.Error(), "inbound/rdp-jump") {
		t.Errorf("a grant on 3389, which rdp-jump forwards from anywhere: %v, want a refusal naming inbound/rdp-jump", err)
	}
	// A user's rule from an IP group (addresses not modelled) to port 22
	// is not taken to lie within the grant's source.
	ipg := inventory.SampleClassicFirewall()
	ipg.Firewalls[0].NatRuleCollections[0].Rules = append(ipg.Firewalls[0].NatRuleCollections[0].Rules, inventory.NatRule{Name: "ssh-partners",
		SourceIPGroups: []string{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/ipGroups/partners"}, DestinationAddresses: []string{"198.18.0.20"},
		DestinationPorts: []string{"2200"}, Protocols: []string{"TCP"}, TranslatedAddress: "10.0.4.4", TranslatedPort: "22"})
	st3, _ := firewallStore(t, ipg)
	_, err = sim.New(st3).Apply(ctx, vm, jit.Desired{VMID: vm.ID, Guarded: guarded, Grants: []jit.DesiredGrant{g("ssh", 22)}})
	if !errors.Is(err, sim.ErrUnprotectable) || !strings.Contains(err.Error(), "ssh-partners") {
		t.Errorf("a grant on 22 with an IP-group DNAT rule to it: %v, want a refusal naming ssh-partners", err)
	}
	// The VM leaves the firewall (its inventory changes): the DNAT rule goes.
	moved := vm
	moved.Firewall = ""
	if _, err := p.Apply(ctx, moved, jit.Desired{VMID: vm.ID, Guarded: guarded}); err != nil {
		t.Fatal(err)
	}
	if got := cloud.Firewall(t, vm.Firewall); len(got.NatRuleCollections) != 1 {
		t.Errorf("JIT's collection left on a firewall the VM is no longer behind: %+v", got.NatRuleCollections)
	}

	inv.Firewalls[0].ManagedByFirewallManager = true
	st2, _ := firewallStore(t, inv)
	if _, err := sim.New(st2).Apply(ctx, vm, jit.Desired{VMID: vm.ID, Guarded: guarded}); !errors.Is(err, sim.ErrUnprotectable) {
		t.Errorf("enable behind a Firewall Manager firewall: %v, want ErrUnprotectable", err)
	}
}
