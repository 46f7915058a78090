package azure_test

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/clock"
	"github.com/drawbridge/drawbridge/internal/cloudsim/armsim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/provider/azure"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
)

// TestRelinkedVMLeavesNoDNATRuleBehind: jump-01 has a grant through
// edge-fw. drawbridge restarts (a provider with nothing in memory) and a
// re-sync moves jump-01 behind edge-fw2: the resync's Holding finds its
// DNAT rule on edge-fw, and the reconcile that follows takes it off
// (edge-fw is again exactly as loaded), puts one on edge-fw2 and tells the
// requester the new address. A second re-sync unlinks jump-01 from any
// firewall: edge-fw2 loses its rule too, and the grant says to connect to
// the VM itself.
func TestRelinkedVMLeavesNoDNATRuleBehind(t *testing.T) {
	ctx := context.Background()
	s := startSim(t, armsim.Options{PageSize: 2})
	frag := inventory.SampleClassicFirewall()
	fw1 := frag.Firewalls[0]
	fw2 := inventory.Firewall{ID: strings.Replace(fw1.ID, "edge-fw", "edge-fw2", 1), PublicIPs: []netip.Addr{netip.MustParseAddr("198.18.0.21")},
		SubnetPrefix: netip.MustParsePrefix("10.0.251.0/26")}
	s.Load(inventory.Sample())
	s.Load(frag)
	s.Load(inventory.Inventory{Firewalls: []inventory.Firewall{fw2}})
	loaded := func(id string) []any {
		d, _ := s.Doc(id)
		return d["properties"].(map[string]any)["natRuleCollections"].([]any)
	}
	fw1Before, fw2Before := loaded(fw1.ID), loaded(fw2.ID)
	found, err := azure.Discover(ctx, armsim.StaticToken("t"), s.ClientOptions(), azure.Scope{Subscription: inventory.SampleSubscription})
	if err != nil {
		t.Fatal(err)
	}
	jump := frag.VMs[0].ID
	relink := func(inv inventory.Inventory, fw string) inventory.Inventory {
		inv.VMs = append([]inventory.VM(nil), inv.VMs...)
		for i := range inv.VMs {
			if inventory.Key(inv.VMs[i].ID) == inventory.Key(jump) {
				inv.VMs[i].Firewall = fw
			}
		}
		return inv
	}
	found = relink(found, fw1.ID) // discovery links it by the DNAT rule to its address; say so regardless
	st := memstore.New()
	n := 0
	service := func(p *azure.Provider) *jit.Service {
		return jit.NewService(jit.Config{Store: st, Providers: jit.ProviderMap{inventory.ProviderAzure: p}, Clock: clock.Real{},
			NewID: func() string { n++; return fmt.Sprintf("g%04d", n) }})
	}
	svc := service(newProvider(t, s))
	if err := svc.ApplyInventory(ctx, found); err != nil {
		t.Fatal(err)
	}
	pol, err := svc.PutPolicy(ctx, jit.Policy{ID: jit.PolicyID(inventory.SampleSubscription, inventory.SampleResourceGroup, "westeurope", "jump"), Name: "jump",
		Location: "westeurope", VirtualMachines: []jit.VMPolicy{{ID: jump, Ports: []jit.PortPolicy{{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	req, err := svc.Initiate(ctx, jit.Actor{Principal: "alice"}, pol.ID, jit.InitiateInput{VirtualMachines: []jit.InitiateVM{{ID: jump,
		Ports: []jit.InitiatePort{{Number: 22, Duration: "PT1H", AllowedSourceAddressPrefix: "198.51.100.7"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	g := req.Grants[0]
	if want := netip.MustParseAddrPort("198.18.0.20:50000"); g.ConnectTo != want {
		t.Fatalf("grant through edge-fw: connect to %v, want %v", g.ConnectTo, want)
	}
	jitRules := func(id string) []string {
		var out []string
		for _, c := range loaded(id) {
			c := c.(map[string]any)
			if c["name"] != sim.FirewallCollection {
				continue
			}
			for _, r := range c["properties"].(map[string]any)["rules"].([]any) {
				out = append(out, r.(map[string]any)["name"].(string))
			}
		}
		return out
	}
	rule := sim.DNATRuleName(jump, g.ID)
	if got := jitRules(fw1.ID); !reflect.DeepEqual(got, []string{rule}) {
		t.Fatalf("edge-fw's JIT rules after the grant: %v", got)
	}

	// Restart, then the re-sync that moves jump-01 behind edge-fw2.
	svc = service(newProvider(t, s))
	if err := svc.ApplyInventory(ctx, relink(found, fw2.ID)); err != nil {
		t.Fatal(err)
	}
	if got := loaded(fw1.ID); !reflect.DeepEqual(got, fw1Before) {
		t.Errorf("edge-fw after jump-01 moved away:\n got %v\nwant %v", got, fw1Before)
	}
	if got := jitRules(fw2.ID); !reflect.DeepEqual(got, []string{rule}) {
		t.Errorf("edge-fw2's JIT rules after jump-01 moved behind it: %v", got)
	}
	if g := grantNow(t, svc, g.ID); g.ConnectTo != netip.MustParseAddrPort("198.18.0.21:22") || !g.Applied || g.ProviderError != "" {
		t.Errorf("grant after the move: connect to %v, applied %v, error %q; want 198.18.0.21:22", g.ConnectTo, g.Applied, g.ProviderError)
	}

	// Unlinked from any firewall (same process: the provider remembers).
	if err := svc.ApplyInventory(ctx, relink(found, "")); err != nil {
		t.Fatal(err)
	}
	if got := loaded(fw2.ID); !reflect.DeepEqual(got, fw2Before) {
		t.Errorf("edge-fw2 after jump-01 left every firewall:\n got %v\nwant %v", got, fw2Before)
	}
	if got := loaded(fw1.ID); !reflect.DeepEqual(got, fw1Before) {
		t.Errorf("edge-fw changed again: %v", got)
	}
	if g := grantNow(t, svc, g.ID); g.ConnectTo.IsValid() || !g.Applied {
		t.Errorf("grant after the unlink: connect to %v (want the VM itself), applied %v", g.ConnectTo, g.Applied)
	}
}

func grantNow(t *testing.T, svc *jit.Service, id string) jit.Grant {
	t.Helper()
	g, err := svc.GetGrant(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return g
}
