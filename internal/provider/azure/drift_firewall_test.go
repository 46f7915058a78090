package azure_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/cloudsim/armsim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/providertest"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
)

// TestFirewallDNATDriftRepairedAndReported: JIT's DNAT rule deleted from
// the firewall during a grant is re-created by the next Apply and reported
// as drift; a DNAT rule named for the VM that JIT never wrote is deleted and
// reported.
func TestFirewallDNATDriftRepairedAndReported(t *testing.T) {
	s := startSim(t, armsim.Options{})
	inv := providertest.Inventory()
	s.Load(inv)
	vm := inv.VMs[len(inv.VMs)-1]
	p := newProvider(t, s)
	ctx := context.Background()
	src, _ := jit.ParseSource("198.51.100.7")
	d := jit.Desired{VMID: vm.ID, Guarded: []jit.GuardedPort{{Port: 22, Protocol: netrule.Tcp}},
		Grants: []jit.DesiredGrant{{GrantID: "g1", Port: 22, Protocol: netrule.Tcp, Source: src, End: time.Now().Add(time.Hour)}}}
	if obs, err := p.Apply(ctx, vm, d); err != nil || len(obs.Drift) != 0 {
		t.Fatalf("first apply: drift %v, err %v", obs.Drift, err)
	}
	setJIT := func(rules ...inventory.NatRule) {
		s.EditFirewall(providertest.FirewallID, func(pr map[string]any) {
			var keep []any
			for _, c := range pr["natRuleCollections"].([]any) {
				if c.(map[string]any)["name"] != sim.FirewallCollection {
					keep = append(keep, c)
				}
			}
			if len(rules) > 0 {
				keep = append(keep, armsim.NatCollectionDoc(inventory.NatRuleCollection{Name: sim.FirewallCollection, Priority: 65000, Rules: rules}))
			}
			pr["natRuleCollections"] = keep
		})
	}
	setJIT() // someone deletes JIT's collection
	obs, err := p.Apply(ctx, vm, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(obs.Drift) != 1 || !strings.Contains(obs.Drift[0].Found, "missing from Azure Firewall") || obs.Drift[0].Port != 22 || obs.Drift[0].Protocol != "tcp" {
		t.Fatalf("drift after the DNAT rule was deleted: %+v", obs.Drift)
	}
	if !hasDNAT(s, providertest.FirewallID, sim.DNATRuleName(vm.ID, "g1")) {
		t.Fatal("the DNAT rule was not re-created")
	}
	stray := inventory.NatRule{Name: sim.DNATRuleName(vm.ID, "forged"), SourceAddresses: []string{"*"}, DestinationAddresses: []string{"198.18.7.1"},
		DestinationPorts: []string{"2222"}, Protocols: []string{"TCP"}, TranslatedAddress: "10.7.3.4", TranslatedPort: "22"}
	fw := wireCloud{s}.Firewall(t, providertest.FirewallID)
	setJIT(append(fw.NatRuleCollections[len(fw.NatRuleCollections)-1].Rules, stray)...)
	obs, err = p.Apply(ctx, vm, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(obs.Drift) != 1 || !strings.Contains(obs.Drift[0].Found, "unexpected JIT-named DNAT rule") || hasDNAT(s, providertest.FirewallID, stray.Name) {
		t.Fatalf("a forged DNAT rule: drift %+v, still there %v", obs.Drift, hasDNAT(s, providertest.FirewallID, stray.Name))
	}
	if obs, err := p.Apply(ctx, vm, d); err != nil || len(obs.Drift) != 0 {
		t.Fatalf("a quiet apply reports drift %v, err %v", obs.Drift, err)
	}
}
