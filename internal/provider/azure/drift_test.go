package azure_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/clock"
	"github.com/drawbridge/drawbridge/internal/cloudsim/armsim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/azure"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
)

// events records what the service publishes.
type events struct {
	mu  sync.Mutex
	evs []jit.Event
}

func (e *events) Publish(evs []jit.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, evs...)
}

func (e *events) kind(k jit.EventKind) []jit.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []jit.Event
	for _, ev := range e.evs {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

// svcWorld is a JIT service whose VMs come from discovery of the ARM wire
// simulator and use provider "azure" through the SDK, with metrics.
type svcWorld struct {
	sim    *armsim.Server
	st     *memstore.Store
	svc    *jit.Service
	events *events
	m      *metrics.Metrics
	prov   *azure.Provider
}

func newSvcWorld(t *testing.T) *svcWorld {
	t.Helper()
	ctx := context.Background()
	s := startSim(t, armsim.Options{})
	s.Load(inventory.Sample())
	found, err := azure.Discover(ctx, armsim.StaticToken("t"), s.ClientOptions(), azure.Scope{Subscription: inventory.SampleSubscription})
	if err != nil {
		t.Fatal(err)
	}
	w := &svcWorld{sim: s, st: memstore.New(), events: &events{}, m: metrics.New(), prov: newProvider(t, s)}
	n := 0
	w.svc = jit.NewService(jit.Config{Store: w.st, Providers: w.m.WrapProviders(jit.ProviderMap{inventory.ProviderAzure: w.prov}),
		Clock: clock.Real{}, NewID: func() string { n++; return fmt.Sprintf("g%04d", n) }, Events: w.events})
	if err := w.svc.ApplyInventory(ctx, found); err != nil {
		t.Fatal(err)
	}
	return w
}

const sampleRG = "/subscriptions/" + inventory.SampleSubscription + "/resourceGroups/" + inventory.SampleResourceGroup

func sampleVM(name string) inventory.VM {
	return inventory.VM{ID: sampleRG + "/providers/Microsoft.Compute/virtualMachines/" + name, Name: name}
}

func sampleNSG(name string) string {
	return sampleRG + "/providers/Microsoft.Network/networkSecurityGroups/" + name
}

func (w *svcWorld) guard(t *testing.T, vms ...inventory.VM) jit.Policy {
	t.Helper()
	p := jit.Policy{ID: jit.PolicyID(inventory.SampleSubscription, inventory.SampleResourceGroup, "westeurope", "default"), Name: "default", Location: "westeurope"}
	for _, vm := range vms {
		p.VirtualMachines = append(p.VirtualMachines, jit.VMPolicy{ID: vm.ID,
			Ports: []jit.PortPolicy{{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}}})
	}
	out, err := w.svc.PutPolicy(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (w *svcWorld) auditOps(t *testing.T, op string) []audit.Record {
	t.Helper()
	var recs []audit.Record
	err := w.st.ObjectTx(context.Background(), func(o store.Objects) error {
		var err error
		recs, err = auditstore.List(context.Background(), o, auditstore.Filter{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	for _, r := range recs {
		if r.Operation == op {
			out = append(out, r)
		}
	}
	return out
}

// driftMetric is drawbridge_drift_repairs_total{provider="azure"} as
// served at /metrics.
func (w *svcWorld) driftMetric(t *testing.T) string {
	rec := httptest.NewRecorder()
	w.m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, l := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(l, `drawbridge_drift_repairs_total{provider="azure"}`) {
			return strings.Fields(l)[1]
		}
	}
	return "0"
}

// TestDriftAudited: JIT's deny rule deleted in Azure is re-created by one
// resync, which writes one "drift" audit record (found → restored), sends
// one drift event and counts one repair; enabling, and a resync with
// nothing drifted, report none.
func TestDriftAudited(t *testing.T) {
	ctx := context.Background()
	w := newSvcWorld(t)
	vm := sampleVM("web-01")
	w.guard(t, vm)
	if failed, err := w.svc.ReconcileAll(ctx); err != nil || len(failed) > 0 {
		t.Fatalf("resync: %v %v", failed, err)
	}
	if n := len(w.auditOps(t, jit.AuditDrift)); n != 0 {
		t.Fatalf("%d drift records after enabling and a quiet resync", n)
	}
	nsg := sampleNSG("web-01-nsg")
	deny := sim.DenyRuleName(vm, 22, netrule.Tcp)
	if !hasRule(w.sim, nsg, deny) {
		t.Fatalf("no deny rule %s after enabling", deny)
	}
	w.sim.DeleteRule(nsg, deny)
	if failed, err := w.svc.ReconcileAll(ctx); err != nil || len(failed) > 0 {
		t.Fatalf("resync: %v %v", failed, err)
	}
	if !hasRule(w.sim, nsg, deny) {
		t.Fatalf("deny rule not re-created by the resync")
	}
	recs := w.auditOps(t, jit.AuditDrift)
	if len(recs) != 1 {
		t.Fatalf("%d drift records, want 1", len(recs))
	}
	if r := recs[0]; !strings.EqualFold(r.Target, vm.ID) || r.Principal != jit.SystemPrincipal ||
		!strings.Contains(r.Detail, "deny rule "+deny+" missing from NSG") || !strings.Contains(r.Detail, "re-created "+deny) {
		t.Errorf("drift record: %+v", r)
	}
	if evs := w.events.kind(jit.EventDrift); len(evs) != 1 || !strings.EqualFold(evs[0].VMID, vm.ID) || evs[0].Port != 22 {
		t.Errorf("drift events: %+v", evs)
	}
	if got := w.driftMetric(t); got != "1" {
		t.Errorf("drift metric %s, want 1", got)
	}
	// Repaired: the next resync finds nothing.
	if _, err := w.svc.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(w.auditOps(t, jit.AuditDrift)); n != 1 {
		t.Errorf("%d drift records after a quiet resync, want still 1", n)
	}
}

// TestResyncCleansUpAfterFailedDisable: the policy of a VM with an open
// grant is deleted while every ARM call fails; the store forgets the VM (no
// policy, grant ended) but its deny and allow rules stay in Azure. The
// resync asks the provider which VMs still hold JIT rules (jit.Holder) and
// reconciles them: every NSG is back to its state before JIT.
func TestResyncCleansUpAfterFailedDisable(t *testing.T) {
	ctx := context.Background()
	w := newSvcWorld(t)
	vm := sampleVM("web-01")
	before := map[string][]netrule.SecurityRule{}
	for _, id := range w.sim.NSGIDs() {
		n, _ := w.sim.NSG(id)
		before[id] = n.SecurityRules
	}
	pol := w.guard(t, vm)
	_, err := w.svc.Initiate(ctx, jit.Actor{Principal: "alice"}, pol.ID, jit.InitiateInput{VirtualMachines: []jit.InitiateVM{{ID: vm.ID,
		Ports: []jit.InitiatePort{{Number: 22, Duration: "PT1H", AllowedSourceAddressPrefix: "198.51.100.7"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	allow := sim.AllowRuleName(vm.ID, "g0002")
	nsg := sampleNSG("web-01-nsg")
	if !hasRule(w.sim, nsg, allow) {
		t.Fatalf("no allow rule %s after the request", allow)
	}
	w.sim.SetFaults(armsim.Faults{ErrorRate: 1})
	_ = w.svc.DeletePolicy(ctx, pol.ID) // committed; its reconcile fails
	w.sim.SetFaults(armsim.Faults{})
	if !hasRule(w.sim, nsg, allow) {
		t.Fatal("the faults should have kept the disable from reaching Azure")
	}
	if failed, err := w.svc.ReconcileAll(ctx); err != nil || len(failed) > 0 {
		t.Fatalf("resync: %v %v", failed, err)
	}
	for id, want := range before {
		if got, _ := w.sim.NSG(id); !reflect.DeepEqual(got.SecurityRules, want) {
			t.Errorf("NSG %s after the resync\n got %+v\nwant %+v", id, got.SecurityRules, want)
		}
	}
}

// TestUnexpectedJITRuleIsDrift: an allow rule named like JIT's for the VM
// that JIT never wrote (someone copying JIT's naming to open the port) is
// deleted by the next resync and audited as drift.
func TestUnexpectedJITRuleIsDrift(t *testing.T) {
	ctx := context.Background()
	w := newSvcWorld(t)
	vm := sampleVM("web-01")
	w.guard(t, vm)
	nsg := sampleNSG("web-01-nsg")
	rogue := sim.AllowRuleName(vm.ID, "not-a-grant")
	if !w.sim.AddRule(nsg, netrule.SecurityRule{Name: rogue, Priority: 150, Direction: netrule.Inbound, Access: netrule.Allow, Protocol: netrule.Tcp,
		SourceAddressPrefix: "*", SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "22"}) {
		t.Fatal("no NSG")
	}
	if failed, err := w.svc.ReconcileAll(ctx); err != nil || len(failed) > 0 {
		t.Fatalf("resync: %v %v", failed, err)
	}
	if hasRule(w.sim, nsg, rogue) {
		t.Fatal("the unexpected JIT-named allow rule survived the resync")
	}
	recs := w.auditOps(t, jit.AuditDrift)
	if len(recs) != 1 || !strings.Contains(recs[0].Detail, "unexpected JIT-named rule "+rogue) || !strings.Contains(recs[0].Detail, "deleted "+rogue) {
		t.Fatalf("drift records: %+v", recs)
	}
}
