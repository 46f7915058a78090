package jit_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
	"github.com/drawbridge/drawbridge/internal/store/storetest"
)

// approvalOutcome is what the approval scenario leaves behind, without IDs.
type approvalOutcome struct {
	Audit   []string // operation and result of each audit record
	Grants  []string // status, reason and source of each grant of vm1, newest first
	States  []string // approval state of each request, in the order made
	Pending int      // requests still pending
	Opened  int      // requests listed under the policy
	Desired int      // grants in vm1's last desired state
	KeptID  bool     // the approved grant kept the ID shown while pending
}

// The approval flow (hold, approve twice, deny, lapse) ends in the same
// state, audit log and firewall whether every transaction runs once or
// twice, on the fake and on SQLite (where reruns really happen).
func TestApprovalTransactionsAreSafeToRunTwice(t *testing.T) {
	scenario := func(f *fixture) approvalOutcome {
		t.Helper()
		ctx := context.Background()
		p := f.put(t, policyFor(vm1, sshApproval("ops", 2)))
		ask := func(src string) jit.Request {
			in := request(vm1, 22, src, time.Hour)
			in.Justification = "incident"
			r, err := f.svc.Initiate(ctx, alice, p.ID, in)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		bob, carol := jit.Actor{Principal: "bob", Groups: []string{"ops"}}, jit.Actor{Principal: "carol", Groups: []string{"ops"}}
		r1 := ask("198.18.0.7")
		f.clk.Advance(time.Minute)
		if _, _, err := f.svc.Approve(ctx, bob, r1.ID); err != nil {
			t.Fatal(err)
		}
		_, opened, err := f.svc.Approve(ctx, carol, r1.ID)
		if err != nil {
			t.Fatal(err)
		}
		r2 := ask("198.18.0.8")
		if _, err := f.svc.Deny(ctx, bob, r2.ID, "no"); err != nil {
			t.Fatal(err)
		}
		r3 := ask("198.18.0.9")
		f.clk.Advance(jit.DefaultApprovalTimeout)
		if _, err := f.svc.ExpireDue(ctx); err != nil {
			t.Fatal(err)
		}
		out := approvalOutcome{KeptID: len(opened.Grants) == 1 && opened.Grants[0].ID == r1.Grants[0].ID}
		for _, r := range []jit.Request{r1, r2, r3} {
			pr, err := f.svc.GetPendingRequest(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			out.States = append(out.States, pr.State)
		}
		gs, err := f.svc.ListGrants(ctx, jit.GrantFilter{VMID: vm1})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			out.Grants = append(out.Grants, fmtGrant(g))
		}
		ps, err := f.svc.ListPendingRequests(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out.Pending = len(ps)
		rs, err := f.svc.ListRequests(ctx, p.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		out.Opened = len(rs)
		out.Desired = len(f.prov.last(vm1).Grants)
		err = f.store.ObjectReadTx(ctx, func(o storeObjects) error {
			recs, err := auditstore.List(ctx, o, auditstore.Filter{})
			for _, r := range recs {
				out.Audit = append(out.Audit, r.Operation+" "+r.Result)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	once := scenario(newFixture(t))
	want := approvalOutcome{
		// All three start at t0+1m (r1's on approval): newest request first.
		Grants: []string{"Revoked/ApprovalLapsed/198.18.0.9", "Revoked/Denied/198.18.0.8", "Revoked/Expired/198.18.0.7"},
		States: []string{jit.ApprovalApproved, jit.ApprovalDenied, jit.ApprovalLapsed}, Opened: 1, KeptID: true,
	}
	got := once
	got.Audit = nil
	if !reflect.DeepEqual(got, want) || len(once.Audit) == 0 {
		t.Fatalf("outcome %+v; want %+v", once, want)
	}
	backends := map[string]func() storetest.Store{
		"memstore": func() storetest.Store { return memstore.New() },
		"sqlite":   func() storetest.Store { return openSQLite(t) },
	}
	for name, open := range backends {
		if name != "memstore" {
			if got := scenario(newFixtureOn(t, open(), nil)); !reflect.DeepEqual(once, got) {
				t.Errorf("%s: outcome differs from memstore's:\nmemstore %+v\n%s %+v", name, once, name, got)
			}
		}
		var rr *storetest.Rerun
		twice := scenario(newFixtureOn(t, open(), func(st storetest.Store) jit.Store { rr = storetest.NewRerun(st); return rr }))
		if rr.Reruns() == 0 {
			t.Fatalf("%s: the rerun store ran no transaction twice", name)
		}
		if !reflect.DeepEqual(once, twice) {
			t.Errorf("%s: running each transaction twice changed the outcome:\nonce  %+v\ntwice %+v", name, once, twice)
		}
	}
}

// A request left pending by an older version (a jit.pending object) is,
// once upgraded, a pending request like any other: listed, approved into
// an open grant under the grant ID the requester was shown, revocable by it.
func TestUpgradedPendingRequestOpensUnderItsGrantID(t *testing.T) {
	f := newFixture(t)
	p := f.put(t, policyFor(vm1, sshApproval("ops", 1)))
	ctx := context.Background()
	src, _ := jit.ParseSource("198.18.0.7")
	legacy := jit.PendingRequest{
		Request: jit.Request{ID: "old-r", PolicyID: p.ID, Requestor: "alice", Justification: "incident", StartTime: t0, Grants: []jit.Grant{{
			ID: "old-g", RequestID: "old-r", PolicyID: p.ID, VMID: vm1, Port: 22, Protocol: "Tcp", Source: src,
			StartTime: t0, EndTime: t0.Add(time.Hour), Status: jit.StatusPending, StatusReason: jit.ReasonAwaitingApproval,
		}}},
		ApprovalRecord: jit.ApprovalRecord{Rules: []jit.ApprovalRule{{Approvers: "ops", Count: 1}}, Approvals: []jit.Approval{}, State: jit.ApprovalPending, LapseAt: t0.Add(time.Hour)},
	}
	err := f.store.InTx(ctx, func(tx jit.Tx) error {
		if err := tx.PutObject(ctx, "jit.pending", legacy.Request.ID, legacy); err != nil {
			return err
		}
		n, err := jit.UpgradeApprovalObjects(ctx, tx)
		if err == nil && n != 1 {
			err = errors.New("nothing upgraded")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if ps, err := f.svc.ListPendingRequests(ctx); err != nil || len(ps) != 1 || ps[0].Request.ID != "old-r" {
		t.Fatalf("pending after upgrade = %+v, %v", ps, err)
	}
	f.clk.Advance(10 * time.Minute)
	_, opened, err := f.svc.Approve(ctx, jit.Actor{Principal: "bob", Groups: []string{"ops"}}, "old-r")
	if err != nil || len(opened.Grants) != 1 || opened.Grants[0].ID != "old-g" || !opened.Grants[0].EndTime.Equal(t0.Add(70*time.Minute)) {
		t.Fatalf("approve = %+v, %v", opened, err)
	}
	if d := f.prov.last(vm1); len(d.Grants) != 1 || d.Grants[0].GrantID != "old-g" {
		t.Fatalf("desired after approval = %+v", d)
	}
	if g, err := f.svc.Revoke(ctx, alice, "old-g"); err != nil || g.Status != jit.StatusRevoked {
		t.Fatalf("revoke old-g = %+v, %v", g, err)
	}
}

// A grant listing names who asked for a pending or denied grant, though
// its request is not among its policy's (opened) requests.
func TestRequestorsNameGrantsAwaitingApproval(t *testing.T) {
	f := newFixture(t)
	p := f.put(t, policyFor(vm1, sshApproval("ops", 1)))
	ctx := context.Background()
	in := request(vm1, 22, "198.18.0.7", time.Hour)
	in.Justification = "incident"
	r1, err := f.svc.Initiate(ctx, alice, p.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := f.svc.Initiate(ctx, alice, p.ID, in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Deny(ctx, jit.Actor{Principal: "bob", Groups: []string{"ops"}}, r2.ID, ""); err != nil {
		t.Fatal(err)
	}
	gs, err := f.svc.ListGrants(ctx, jit.GrantFilter{VMID: vm1})
	if err != nil || len(gs) != 2 {
		t.Fatalf("grants = %+v, %v", gs, err)
	}
	names, err := f.svc.Requestors(ctx, gs)
	if err != nil || names[r1.ID] != "alice" || names[r2.ID] != "alice" {
		t.Fatalf("Requestors = %v, %v; want alice for %s and %s", names, err, r1.ID, r2.ID)
	}
}
