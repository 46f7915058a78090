package jit_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// TestConcurrentSourcesOnOnePort: with ConcurrentSources, grants from two
// sources on one port both stay active and both reach the provider; a newer
// request from the first source still ends that source's older grant.
func TestConcurrentSourcesOnOnePort(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pp := ssh("*")
	pp.ConcurrentSources = true
	p := f.put(t, policyFor(vm1, pp))
	a1, err := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 22, "198.18.0.1", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute)
	b, err := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 22, "198.18.0.2", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := f.svc.GetGrant(ctx, a1.Grants[0].ID); g.Status != jit.StatusInitiated {
		t.Fatalf("first source's grant = %s/%s, want still active", g.Status, g.StatusReason)
	}
	if d := f.prov.last(vm1); len(d.Grants) != 2 {
		t.Fatalf("desired grants = %+v, want both sources", d.Grants)
	}
	f.clk.Advance(time.Minute)
	a2, err := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 22, "198.18.0.1", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if g, _ := f.svc.GetGrant(ctx, a1.Grants[0].ID); g.StatusReason != jit.ReasonNewerRequestInitiated {
		t.Fatalf("same source's older grant = %s/%s, want NewerRequestInitiated", g.Status, g.StatusReason)
	}
	active, _ := f.svc.ListGrants(ctx, jit.GrantFilter{VMID: vm1, ActiveOnly: true})
	ids := map[string]bool{}
	for _, g := range active {
		ids[g.ID] = true
	}
	if len(active) != 2 || !ids[b.Grants[0].ID] || !ids[a2.Grants[0].ID] {
		t.Fatalf("active grants = %+v, want the second source's and the first source's newest", active)
	}
}

// TestRecordDrift: an agent's drift report becomes one audit record and one
// event, naming what was found and restored.
func TestRecordDrift(t *testing.T) {
	f, sink := newEventFixture(t)
	ctx := jit.WithActor(context.Background(), jit.Actor{Principal: "host-agent"})
	err := f.svc.RecordDrift(ctx, vm1, jit.DriftRecord{SeenAt: t0, Found: "delete table x1 by nft[42]", Restored: "guarded [22/Tcp]"})
	if err != nil {
		t.Fatal(err)
	}
	recs := f.auditLog(t)
	last := recs[len(recs)-1]
	if last.Operation != jit.AuditDrift || last.Principal != "host-agent" || last.Target != vm1 ||
		!strings.Contains(last.Detail, "by nft[42]") || !strings.Contains(last.Detail, "guarded [22/Tcp]") {
		t.Fatalf("drift record = %+v", last)
	}
	evs := sink.take()
	if len(evs) != 1 || evs[0].Kind != jit.EventDrift || evs[0].VMID != vm1 || !strings.Contains(evs[0].Detail, "nft[42]") {
		t.Fatalf("events = %+v", evs)
	}
}
