package providertest

import (
	"reflect"
	"testing"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// firewallUnlinked: a VM with a grant through the firewall is unlinked
// from it (a re-sync found it no longer behind the firewall). The next
// Apply, with the grant still in force, removes the VM's DNAT rule (and
// JIT's collection with it) from the firewall it is no longer behind,
// reports no connect-to address, and the disable that follows returns
// every NSG to its state before.
func firewallUnlinked(t *testing.T, h Harness) {
	c, ok := h.Cloud.(FirewallCloud)
	if !ok {
		t.Skip("this cloud holds no Azure Firewalls")
	}
	vm := behindFirewall()
	beforeNSGs := snapshot(t, c)
	d := jit.Desired{VMID: vm.ID, Guarded: ports, Grants: []jit.DesiredGrant{grant(vm, "g-fw", 22)}}
	apply(t, h.Provider, vm, jit.Desired{VMID: vm.ID, Guarded: ports})
	if obs := apply(t, h.Provider, vm, d); len(obs.ConnectTo) != 1 {
		t.Fatalf("connect-to %v through the firewall", obs.ConnectTo)
	}
	if fw := c.Firewall(t, FirewallID); reflect.DeepEqual(fw.NatRuleCollections, firewall().NatRuleCollections) {
		t.Fatal("the grant added no DNAT rule")
	}
	unlinked := vm
	unlinked.Firewall = ""
	if obs := apply(t, h.Provider, unlinked, d); len(obs.ConnectTo) != 0 {
		t.Errorf("connect-to %v after the VM left the firewall", obs.ConnectTo)
	}
	if got := c.Firewall(t, FirewallID); !reflect.DeepEqual(got.NatRuleCollections, firewall().NatRuleCollections) {
		t.Errorf("the firewall the VM left keeps JIT's rules:\n got %+v\nwant %+v", got.NatRuleCollections, firewall().NatRuleCollections)
	}
	apply(t, h.Provider, unlinked, jit.Desired{VMID: vm.ID}) // disable
	sameNSGs(t, "after disable", snapshot(t, c), beforeNSGs)
}
