package aws_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/clock"
	"github.com/drawbridge/drawbridge/internal/cloudsim/ec2sim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/provider/aws/conformance"
	"github.com/drawbridge/drawbridge/internal/store"
)

type events struct {
	mu  sync.Mutex
	evs []jit.Event
}

func (e *events) Publish(evs []jit.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, evs...)
}

func (e *events) count(k jit.EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.evs {
		if ev.Kind == k {
			n++
		}
	}
	return n
}

// svcWorld is a JIT service over the wire world's store whose VM "web"
// uses the aws provider through the EC2 wire simulator.
type svcWorld struct {
	*wireWorld
	svc    *jit.Service
	events *events
	vm     inventory.VM
}

func newSvcWorld(t *testing.T) *svcWorld {
	t.Helper()
	w := &svcWorld{wireWorld: newWireWorld(t, conformance.StandardSpec()), events: &events{}}
	w.vm = w.VM("web")
	w.vm.ID = inventory.AWSInstanceID("123456789012", "us-east-1", "i-web")
	ctx := context.Background()
	if err := w.store.ObjectTx(ctx, func(o store.Objects) error { return o.PutObject(ctx, inventory.KindVM, inventory.Key(w.vm.ID), w.vm) }); err != nil {
		t.Fatal(err)
	}
	n := 0
	w.svc = jit.NewService(jit.Config{Store: w.store, Providers: jit.ProviderMap{inventory.ProviderAWS: w.prov}, Clock: clock.Real{},
		NewID: func() string { n++; return fmt.Sprintf("g%04d", n) }, Events: w.events})
	return w
}

var awsPolicyID = jit.PolicyID("aws-123456789012", "us-east-1", "us-east-1", "default")

func (w *svcWorld) guard(t *testing.T) {
	t.Helper()
	p := jit.Policy{ID: awsPolicyID, Name: "default", Location: "us-east-1", VirtualMachines: []jit.VMPolicy{{ID: w.vm.ID,
		Ports: []jit.PortPolicy{{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}}}}}
	if _, err := w.svc.PutPolicy(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

func (w *svcWorld) request(t *testing.T) {
	t.Helper()
	_, err := w.svc.Initiate(context.Background(), jit.Actor{Principal: "alice"}, awsPolicyID, jit.InitiateInput{VirtualMachines: []jit.InitiateVM{{ID: w.vm.ID,
		Ports: []jit.InitiatePort{{Number: 22, Duration: "PT1H", AllowedSourceAddressPrefix: "198.51.100.7"}}}}})
	if err != nil {
		t.Fatal(err)
	}
}

func (w *svcWorld) auditOps(t *testing.T, op string) []audit.Record {
	t.Helper()
	var recs []audit.Record
	err := w.store.ObjectTx(context.Background(), func(o store.Objects) error {
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

// TestDriftAudited: a revoked permission re-added in EC2 is revoked again by
// one resync, which writes one "drift" audit record and sends one event.
func TestDriftAudited(t *testing.T) {
	ctx := context.Background()
	w := newSvcWorld(t)
	w.guard(t)
	if n := len(w.auditOps(t, jit.AuditDrift)); n != 0 {
		t.Fatalf("%d drift records after enabling", n)
	}
	w.AddRule(t, "sg-0web", conformance.Rule{Proto: "tcp", From: 22, To: 22, CIDR: "203.0.113.0/24", Desc: "IaC"})
	if failed, err := w.svc.ReconcileAll(ctx); err != nil || len(failed) > 0 {
		t.Fatalf("resync: %v %v", failed, err)
	}
	if w.State(t).Allows([]string{"eni-0web0"}, "203.0.113.5", "tcp", 22) {
		t.Fatal("drift not repaired by the resync")
	}
	recs := w.auditOps(t, jit.AuditDrift)
	if len(recs) != 1 {
		t.Fatalf("%d drift records, want 1", len(recs))
	}
	if r := recs[0]; !strings.EqualFold(r.Target, w.vm.ID) || !strings.Contains(r.Detail, "sg-0web") || !strings.Contains(r.Detail, "203.0.113.0/24") {
		t.Errorf("drift record %+v", r)
	}
	if n := w.events.count(jit.EventDrift); n != 1 {
		t.Errorf("%d drift events, want 1", n)
	}
	if _, err := w.svc.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(w.auditOps(t, jit.AuditDrift)); n != 1 {
		t.Errorf("%d drift records after a quiet resync, want 1", n)
	}
}

// TestResyncCleansUpAfterFailedDisable: the policy of a VM with an open
// grant is deleted while every EC2 call fails; the store forgets the VM
// (no policy, the grant ended), yet the grant's security group and the
// revocation are still in EC2. The resync reconciles the VMs the provider
// says it holds state on (jit.Holder) and leaves EC2 exactly as before JIT.
func TestResyncCleansUpAfterFailedDisable(t *testing.T) {
	ctx := context.Background()
	w := newSvcWorld(t)
	before := w.State(t)
	w.guard(t)
	w.request(t)
	if !w.State(t).Allows([]string{"eni-0web0"}, "198.51.100.7", "tcp", 22) {
		t.Fatal("the grant did not open 22")
	}
	w.sim.SetFaults(ec2sim.Faults{ErrorRate: 1, Seed: 1})
	if err := w.svc.DeletePolicy(ctx, awsPolicyID); err == nil {
		t.Log("DeletePolicy reported no error; the reconcile failure is recorded on the VM")
	}
	if !w.State(t).Allows([]string{"eni-0web0"}, "198.51.100.7", "tcp", 22) {
		t.Fatal("the fault should have kept the disable from reaching EC2")
	}
	w.sim.SetFaults(ec2sim.Faults{})
	if failed, err := w.svc.ReconcileAll(ctx); err != nil || len(failed) > 0 {
		t.Fatalf("resync: %v %v", failed, err)
	}
	if d := conformance.Diff(before, w.State(t)); d != "" {
		t.Fatalf("after the resync EC2 differs from before JIT:\n%s", d)
	}
	for id := range w.State(t).Groups {
		if !strings.HasPrefix(id, "sg-0") {
			t.Errorf("group %s left behind", id)
		}
	}
}
