package jit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/clock"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/sqlite"
)

// hookStore runs afterRead (once) between a request's planning read and
// its writing transaction: a change made there is one the plan missed.
type hookStore struct {
	*sqlite.Store
	afterRead func()
}

func (h *hookStore) ReadTx(ctx context.Context, fn func(jit.Tx) error) error {
	err := h.Store.ReadTx(ctx, fn)
	if f := h.afterRead; f != nil {
		h.afterRead = nil
		f()
	}
	return err
}

// countingSim counts how a request's firewall change was made: from the
// plan, or computed in the writing transaction.
type countingSim struct {
	*sim.Provider
	planned, computed atomic.Int64
}

func (c *countingSim) ApplyTx(ctx context.Context, objs store.Objects, vm inventory.VM, d jit.Desired) (jit.Observed, error) {
	c.computed.Add(1)
	return c.Provider.ApplyTx(ctx, objs, vm, d)
}

func (c *countingSim) PlanTx(ctx context.Context, objs store.Objects, vm inventory.VM, d jit.Desired) (jit.TxPlan, error) {
	pl, err := c.Provider.PlanTx(ctx, objs, vm, d)
	if pl == nil || err != nil {
		return pl, err
	}
	return countedPlan{pl, c}, nil
}

type countedPlan struct {
	jit.TxPlan
	c *countingSim
}

func (p countedPlan) ApplyIfCurrent(ctx context.Context, objs store.Objects) (jit.Observed, bool, error) {
	obs, ok, err := p.TxPlan.ApplyIfCurrent(ctx, objs)
	if ok {
		p.c.planned.Add(1)
	}
	return obs, ok, err
}

type planFixture struct {
	svc   *jit.Service
	store *hookStore
	sim   *countingSim
	clk   *clock.Fake
}

const (
	pvm  = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/pvm"
	pnic = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Network/networkInterfaces/pvm-nic"
	pnsg = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Network/networkSecurityGroups/pvm-nsg"
	ppol = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/p"
)

// newPlanFixture is a service on SQLite and the simulated network, with
// plan-ahead on or off, IDs from a counter and a fake clock, and JIT on
// ports 22 and 3389 of one Azure VM.
func newPlanFixture(t *testing.T, planAhead bool) *planFixture {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hs := &hookStore{Store: st}
	cs := &countingSim{Provider: sim.New(st)}
	clk := clock.NewFake(t0)
	var n atomic.Int64
	svc := jit.NewService(jit.Config{Store: hs, Providers: jit.ProviderMap{inventory.ProviderSim: cs}, Clock: clk,
		NewID: func() string { return fmt.Sprintf("id%06d", n.Add(1)) }, PlanAhead: planAhead})
	inv := inventory.Inventory{
		VMs:  []inventory.VM{{ID: pvm, Name: "pvm", Cloud: inventory.Azure, Provider: inventory.ProviderSim, Location: "westeurope", NICs: []string{pnic}}},
		NICs: []inventory.NIC{{ID: pnic, NSG: pnsg, PrivateIPs: []netip.Addr{netip.MustParseAddr("10.0.0.4")}}},
		NSGs: []netrule.NSG{{ID: pnsg, Name: "pvm-nsg", Location: "westeurope"}},
	}
	if err := svc.ApplyInventory(ctx, inv); err != nil {
		t.Fatal(err)
	}
	_, err = svc.PutPolicy(ctx, jit.Policy{ID: ppol, Name: "p", Location: "westeurope", VirtualMachines: []jit.VMPolicy{{ID: pvm, Ports: []jit.PortPolicy{
		{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"},
		{Number: 3389, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return &planFixture{svc: svc, store: hs, sim: cs, clk: clk}
}

func (f *planFixture) request(t *testing.T, port int, src string) jit.Request {
	t.Helper()
	f.clk.Advance(time.Second)
	req, err := f.svc.Initiate(context.Background(), jit.Actor{Principal: "alice", Address: "198.18.0.9"}, ppol, jit.InitiateInput{VirtualMachines: []jit.InitiateVM{{ID: pvm,
		Ports: []jit.InitiatePort{{Number: port, Duration: "1h", AllowedSourceAddressPrefix: src}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func (f *planFixture) nsg(t *testing.T) string {
	t.Helper()
	var raw json.RawMessage
	err := f.store.ObjectReadTx(context.Background(), func(o store.Objects) error {
		return o.GetObject(context.Background(), inventory.KindNSG, inventory.Key(pnsg), &raw)
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// Planned ahead or not, the same requests leave the same firewall, grants
// and reasons; with plan-ahead the changes come from the plans.
func TestPlanAheadGivesTheSameResults(t *testing.T) {
	on, off := newPlanFixture(t, true), newPlanFixture(t, false)
	for i, step := range []struct {
		port int
		src  string
	}{{22, "198.18.0.1"}, {3389, "198.18.0.2"}, {22, "198.18.0.3"}, {22, "198.18.1.0/24"}} {
		a, b := on.request(t, step.port, step.src), off.request(t, step.port, step.src)
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Fatalf("request %d:\nplanned  %s\ncomputed %s", i, ja, jb)
		}
		if na, nb := on.nsg(t), off.nsg(t); na != nb {
			t.Fatalf("request %d, NSG:\nplanned  %s\ncomputed %s", i, na, nb)
		}
	}
	if p, c := on.sim.planned.Load(), on.sim.computed.Load(); p != 4 || c != 1 { // the one computed: PutPolicy's
		t.Errorf("with plan-ahead: %d changes from plans, %d computed; want 4 and 1", p, c)
	}
	if p := off.sim.planned.Load(); p != 0 {
		t.Errorf("without plan-ahead %d changes came from plans", p)
	}
}

// A change to the firewall between the plan and the writing transaction
// (another VM's request on a shared NSG, an operator's edit) makes the
// plan stale: the change is computed again, keeping both.
func TestPlanAheadStaleFirewallIsRecomputed(t *testing.T) {
	f := newPlanFixture(t, true)
	f.request(t, 22, "198.18.0.1")
	f.store.afterRead = func() {
		err := f.store.ObjectTx(context.Background(), func(o store.Objects) error {
			var n netrule.NSG
			if err := o.GetObject(context.Background(), inventory.KindNSG, inventory.Key(pnsg), &n); err != nil {
				return err
			}
			n.SecurityRules = append(n.SecurityRules, netrule.SecurityRule{Name: "late-user-rule", Priority: 4000, Direction: netrule.Inbound, Access: netrule.Allow,
				Protocol: netrule.Tcp, SourceAddressPrefix: "*", SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "8080"})
			return o.PutObject(context.Background(), inventory.KindNSG, inventory.Key(pnsg), n)
		})
		if err != nil {
			t.Error(err)
		}
	}
	computed := f.sim.computed.Load()
	req := f.request(t, 3389, "198.18.0.2")
	if f.sim.computed.Load() != computed+1 {
		t.Fatalf("a stale plan was used (computed %d -> %d)", computed, f.sim.computed.Load())
	}
	var n netrule.NSG
	if err := json.Unmarshal([]byte(f.nsg(t)), &n); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, r := range n.SecurityRules {
		names[r.Name] = true
	}
	if !names["late-user-rule"] || !names[sim.AllowRuleName(pvm, req.Grants[0].ID)] {
		t.Fatalf("NSG after a stale plan lost a rule: %v", names)
	}
}

// Grants changed between the plan and the writing transaction (the expiry
// job ended one): the request is evaluated again from a fresh time, so it
// neither supersedes nor re-enforces the grant that ended.
func TestPlanAheadChangedGrantsReevaluate(t *testing.T) {
	f := newPlanFixture(t, true)
	old := f.request(t, 22, "198.18.0.1").Grants[0]
	other := f.request(t, 3389, "198.18.0.2").Grants[0]
	f.store.afterRead = func() {
		f.clk.Advance(time.Second)
		if _, err := f.svc.Revoke(context.Background(), jit.Actor{Principal: "bob"}, other.ID); err != nil {
			t.Error(err)
		}
	}
	computed := f.sim.computed.Load()
	req := f.request(t, 22, "198.18.0.3")
	if f.sim.computed.Load() == computed {
		t.Fatal("the plan made before the revoke was used")
	}
	got, err := f.svc.GetGrant(context.Background(), other.ID)
	if err != nil || got.StatusReason != jit.ReasonUserRequested {
		t.Fatalf("revoked grant: %+v, %v", got, err)
	}
	if g, _ := f.svc.GetGrant(context.Background(), old.ID); g.StatusReason != jit.ReasonNewerRequestInitiated {
		t.Fatalf("superseded grant: %+v", g)
	}
	if !req.StartTime.After(got.EndedAt) && !req.StartTime.Equal(got.EndedAt) {
		t.Fatalf("request starts at %v, before the revoke it saw (%v)", req.StartTime, got.EndedAt)
	}
	var n netrule.NSG
	if err := json.Unmarshal([]byte(f.nsg(t)), &n); err != nil {
		t.Fatal(err)
	}
	for _, r := range n.SecurityRules {
		if r.Name == sim.AllowRuleName(pvm, other.ID) || r.Name == sim.AllowRuleName(pvm, old.ID) {
			t.Fatalf("NSG still allows ended grant: %s", r.Name)
		}
	}
}
