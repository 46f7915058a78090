package jit_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/jit"
)

func sshApproval(group string, count int) jit.PortPolicy {
	p := ssh("*")
	p.RequireApproval = &jit.ApprovalRule{Approvers: group, Count: count}
	return p
}

func (f *fixture) auditLog(t *testing.T) []audit.Record {
	t.Helper()
	var recs []audit.Record
	err := f.store.ObjectTx(context.Background(), func(o storeObjects) error {
		var err error
		recs, err = auditstore.List(context.Background(), o, auditstore.Filter{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Verify(recs); err != nil {
		t.Fatalf("stored audit log does not verify: %v", err)
	}
	return recs
}

func ops(recs []audit.Record) string {
	var s []string
	for _, r := range recs {
		s = append(s, r.Operation+"@"+r.Principal)
	}
	return strings.Join(s, " ")
}

func TestAuditRecordsEveryStateChange(t *testing.T) {
	f := newFixture(t)
	ctx := jit.WithActor(context.Background(), jit.Actor{Principal: "admin", Address: "198.18.0.1"})
	if _, err := f.svc.PutPolicy(ctx, policyFor(vm1, ssh("*"))); err != nil {
		t.Fatal(err)
	}
	r1, err := f.svc.Initiate(ctx, alice, policyFor(vm1).ID, request(vm1, 22, "198.18.0.7", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Initiate(ctx, alice, policyFor(vm1).ID, request(vm1, 22, "198.18.0.7", time.Hour)); err != nil {
		t.Fatal(err) // supersedes r1's grant
	}
	f.clk.Advance(2 * time.Hour)
	if n, err := f.svc.ExpireDue(context.Background()); err != nil || n != 1 {
		t.Fatalf("ExpireDue = %d, %v", n, err)
	}
	if err := f.svc.DeletePolicy(ctx, policyFor(vm1).ID); err != nil {
		t.Fatal(err)
	}
	recs := f.auditLog(t)
	want := "policy.put@admin initiate@alice grant.end@alice initiate@alice grant.end@drawbridge policy.delete@admin"
	if got := ops(recs); got != want {
		t.Fatalf("audit operations:\n got %s\nwant %s", got, want)
	}
	if recs[0].SourceAddress != "198.18.0.1" || recs[0].Target != policyFor(vm1).ID || len(recs[0].Before) != 0 || len(recs[0].After) == 0 {
		t.Fatalf("policy.put record = %+v", recs[0])
	}
	if recs[2].Target != vm1 || !strings.Contains(recs[2].Detail, "NewerRequestInitiated") || !strings.Contains(recs[2].Detail, r1.Grants[0].ID) {
		t.Fatalf("superseded record = %+v", recs[2])
	}
	if !strings.Contains(recs[4].Detail, "Expired") {
		t.Fatalf("expiry record = %+v", recs[4])
	}
}

func TestRefusedRequestWritesNoAuditRecord(t *testing.T) {
	f := newFixture(t)
	f.put(t, policyFor(vm1, ssh("198.18.0.0/24")))
	before := len(f.auditLog(t))
	_, err := f.svc.Initiate(context.Background(), alice, policyFor(vm1).ID, request(vm1, 22, "203.0.113.9", time.Hour))
	if !errors.Is(err, jit.ErrForbidden) {
		t.Fatalf("err = %v", err)
	}
	if after := len(f.auditLog(t)); after != before {
		t.Fatalf("audit records %d -> %d: a refused change must not commit a success record", before, after)
	}
}

func TestApprovalFlow(t *testing.T) {
	f := newFixture(t)
	f.put(t, policyFor(vm1, sshApproval("ops", 2)))
	ctx := context.Background()
	pid := policyFor(vm1).ID

	// No justification: refused, naming the field.
	_, err := f.svc.Initiate(ctx, alice, pid, request(vm1, 22, "198.18.0.7", time.Hour))
	var fe *jit.FieldError
	if !errors.As(err, &fe) || fe.Field != "justification" || !errors.Is(err, jit.ErrInvalid) {
		t.Fatalf("err = %v; want invalid justification", err)
	}

	in := request(vm1, 22, "198.18.0.7", time.Hour)
	in.Justification = "incident 42"
	req, err := f.svc.Initiate(ctx, alice, pid, in)
	if err != nil {
		t.Fatal(err)
	}
	if req.Grants[0].Status != jit.StatusPending {
		t.Fatalf("status = %s; want Pending", req.Grants[0].Status)
	}
	if d := f.prov.last(vm1); len(d.Grants) != 0 {
		t.Fatalf("a pending grant reached the provider: %+v", d.Grants)
	}
	// The pending grant is a grant row, under the ID the requester was
	// shown, and never an active one.
	if gs, _ := f.svc.ListGrants(ctx, jit.GrantFilter{VMID: vm1}); len(gs) != 1 || gs[0].ID != req.Grants[0].ID || gs[0].Status != jit.StatusPending {
		t.Fatalf("pending request's grants: %+v", gs)
	}
	if gs, _ := f.svc.ListGrants(ctx, jit.GrantFilter{VMID: vm1, ActiveOnly: true}); len(gs) != 0 {
		t.Fatalf("a pending grant is active: %+v", gs)
	}
	if _, err := f.svc.Revoke(ctx, alice, req.Grants[0].ID); !errors.Is(err, jit.ErrConflict) {
		t.Fatalf("revoking a pending grant: %v", err)
	}

	aliceOps := jit.Actor{Principal: "alice", Groups: []string{"ops"}}
	bob := jit.Actor{Principal: "bob", Groups: []string{"OPS"}}
	carol := jit.Actor{Principal: "carol", Groups: []string{"ops"}}
	mallory := jit.Actor{Principal: "mallory", Groups: []string{"dev"}}

	if _, _, err := f.svc.Approve(ctx, aliceOps, req.ID); !errors.Is(err, jit.ErrForbidden) || !strings.Contains(err.Error(), "own request") {
		t.Fatalf("self-approval err = %v", err)
	}
	if _, _, err := f.svc.Approve(ctx, mallory, req.ID); !errors.Is(err, jit.ErrForbidden) || !strings.Contains(err.Error(), "not a member") {
		t.Fatalf("non-member err = %v", err)
	}
	f.clk.Advance(10 * time.Minute)
	p, opened, err := f.svc.Approve(ctx, bob, req.ID)
	if err != nil || p.State != jit.ApprovalPending || len(p.Approvals) != 1 || opened.ID != "" {
		t.Fatalf("first approval: %+v %+v %v", p, opened, err)
	}
	if _, _, err := f.svc.Approve(ctx, bob, req.ID); !errors.Is(err, jit.ErrConflict) {
		t.Fatalf("second approval by the same person: %v", err)
	}
	f.clk.Advance(5 * time.Minute)
	p, opened, err = f.svc.Approve(ctx, carol, req.ID)
	if err != nil || p.State != jit.ApprovalApproved {
		t.Fatalf("final approval: %+v %v", p, err)
	}
	g := opened.Grants[0]
	if opened.ID != req.ID || g.Status != jit.StatusInitiated || !g.StartTime.Equal(t0.Add(15*time.Minute)) || !g.EndTime.Equal(t0.Add(75*time.Minute)) {
		t.Fatalf("opened = %+v", opened)
	}
	if d := f.prov.last(vm1); len(d.Grants) != 1 || d.Grants[0].GrantID != g.ID {
		t.Fatalf("desired after approval = %+v", d)
	}
	if _, err := f.svc.Deny(ctx, mallory, req.ID, "no"); !errors.Is(err, jit.ErrConflict) {
		t.Fatalf("deny after approval: %v", err)
	}
	want := "policy.put@drawbridge request.pending@alice request.approve@bob request.approve@carol initiate@alice"
	if got := ops(f.auditLog(t)); got != want {
		t.Fatalf("audit:\n got %s\nwant %s", got, want)
	}
	// The grant keeps the ID the requester was shown while it was pending,
	// so revoking it by that ID works.
	if g.ID != req.Grants[0].ID {
		t.Fatalf("approved grant %s; the requester was shown %s", g.ID, req.Grants[0].ID)
	}
	if rg, err := f.svc.Revoke(ctx, alice, req.Grants[0].ID); err != nil || rg.Status != jit.StatusRevoked {
		t.Fatalf("revoke by the pending grant's ID: %+v %v", rg, err)
	}
}

func TestApprovalDenyAndLapse(t *testing.T) {
	f := newFixture(t)
	f.put(t, policyFor(vm1, sshApproval("ops", 1)))
	ctx := context.Background()
	pid := policyFor(vm1).ID
	in := request(vm1, 22, "198.18.0.7", time.Hour)
	in.Justification = "deploy"
	r1, err := f.svc.Initiate(ctx, alice, pid, in)
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.svc.Deny(ctx, jit.Actor{Principal: "bob", Groups: []string{"ops"}}, r1.ID, "not now")
	if err != nil || p.State != jit.ApprovalDenied || p.Request.Grants[0].StatusReason != jit.ReasonDenied {
		t.Fatalf("deny: %+v %v", p, err)
	}
	if _, _, err := f.svc.Approve(ctx, jit.Actor{Principal: "carol", Groups: []string{"ops"}}, r1.ID); !errors.Is(err, jit.ErrConflict) {
		t.Fatalf("approve after deny: %v", err)
	}

	r2, err := f.svc.Initiate(ctx, alice, pid, in)
	if err != nil {
		t.Fatal(err)
	}
	next, ok, err := f.svc.NextEndTime(ctx)
	if err != nil || !ok || !next.Equal(t0.Add(jit.DefaultApprovalTimeout)) {
		t.Fatalf("NextEndTime = %v %v %v; want the lapse time", next, ok, err)
	}
	f.clk.Advance(jit.DefaultApprovalTimeout)
	if _, err := f.svc.ExpireDue(ctx); err != nil {
		t.Fatal(err)
	}
	p, err = f.svc.GetPendingRequest(ctx, r2.ID)
	if err != nil || p.State != jit.ApprovalLapsed || p.Request.Grants[0].StatusReason != jit.ReasonApprovalLapsed {
		t.Fatalf("lapse: %+v %v", p, err)
	}
	if ps, _ := f.svc.ListPendingRequests(ctx); len(ps) != 0 {
		t.Fatalf("still pending: %+v", ps)
	}
	if d := f.prov.last(vm1); len(d.Grants) != 0 {
		t.Fatalf("denied/lapsed grants reached the provider: %+v", d)
	}
}

func TestApprovalRuleValidation(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		rule  jit.ApprovalRule
		field string
	}{
		{jit.ApprovalRule{Approvers: "", Count: 1}, "properties.virtualMachines[0].ports[0].requireApproval.approvers"},
		{jit.ApprovalRule{Approvers: "ops", Count: 0}, "properties.virtualMachines[0].ports[0].requireApproval.count"},
		{jit.ApprovalRule{Approvers: "ops", Count: 11}, "properties.virtualMachines[0].ports[0].requireApproval.count"},
	} {
		p := ssh("*")
		r := c.rule
		p.RequireApproval = &r
		_, err := f.svc.PutPolicy(context.Background(), policyFor(vm1, p))
		var fe *jit.FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Fatalf("%+v: err = %v; want field %s", c.rule, err, c.field)
		}
	}
}
