package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// pendingRequest is a request waiting for approval as the service stores
// it: a request row whose grants have status Pending.
func pendingRequest(t *testing.T, id, policyID, vm string, port int, start time.Time, grantID string) jit.Request {
	g := grant(t, grantID, policyID, vm, port, start, start.Add(30*time.Minute))
	g.Status, g.StatusReason = jit.StatusPending, jit.ReasonAwaitingApproval
	return request(id, policyID, start, g)
}

// testApprovals: a request that needs approval is a request row with an
// approval record and Pending grant rows. Pending grants are never active
// (not listed as active, never due, no end time), and the request is not
// among its policy's (opened) requests; the record reads back as written
// and lists by state, oldest first. Approving turns the same grant row
// (same ID) Initiated with the window it opens with, which every query
// then uses; denying ends it; a rolled-back change of the record leaves
// the one before.
func testApprovals(t *testing.T, s Store) {
	p, vm := seed(t, s) // r1 with active grant g1, ending at t0+1h
	cet := time.FixedZone("CET", 3600)
	rec := jit.ApprovalRecord{
		Rules:     []jit.ApprovalRule{{Approvers: "ops", Count: 2}},
		Approvals: []jit.Approval{},
		State:     jit.ApprovalPending,
		LapseAt:   t0.Add(time.Hour).In(cet),
	}
	rp := pendingRequest(t, "rp", p.ID, vm, 3389, t0.Add(2*time.Minute), "gp")
	rq := pendingRequest(t, "rq", p.ID, vm, 3390, t0.Add(time.Minute), "gq")
	rd := pendingRequest(t, "rd", p.ID, vm, 3391, t0, "gd")
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		for _, r := range []jit.Request{rp, rq, rd} {
			if err := tx.InsertRequest(ctx, r); err != nil {
				return err
			}
			if err := tx.PutApproval(ctx, r.ID, rec); err != nil {
				return err
			}
		}
		wantNotFound(t, "PutApproval of an unknown request", tx.PutApproval(ctx, "nope", rec))
		return nil
	})
	// rd is denied: its grant ends, its record says so.
	denied := rec
	denied.State, denied.DecidedAt, denied.DecidedBy, denied.Reason = jit.ApprovalDenied, t0.Add(3*time.Minute), "bob", "not now"
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		g := rd.Grants[0]
		g.Status, g.StatusReason, g.EndedAt = jit.StatusRevoked, jit.ReasonDenied, t0.Add(3*time.Minute)
		if err := tx.UpdateGrant(ctx, g); err != nil {
			return err
		}
		return tx.PutApproval(ctx, rd.ID, denied)
	})
	readTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		checkPendingNotActive(t, ctx, tx, p.ID, vm)
		got, err := tx.GetApproval(ctx, "rp")
		if err != nil {
			return err
		}
		sameJSON(t, "GetApproval(rp)", got, jit.PendingRequest{Request: rp, ApprovalRecord: rec.InUTC()})
		_, err = tx.GetApproval(ctx, "r1")
		wantNotFound(t, "GetApproval of a request that needed no approval", err)
		_, err = tx.GetApproval(ctx, "nope")
		wantNotFound(t, "GetApproval of an unknown request", err)
		ps, err := tx.ListApprovals(ctx, jit.ApprovalPending)
		if err != nil {
			return err
		}
		if len(ps) != 2 || ps[0].Request.ID != "rq" || ps[1].Request.ID != "rp" {
			t.Errorf("ListApprovals(Pending) = %v; want [rq rp] (oldest first)", pendingIDs(ps))
		}
		ps, err = tx.ListApprovals(ctx, jit.ApprovalDenied)
		if err != nil || len(ps) != 1 || ps[0].Request.ID != "rd" || ps[0].Request.Grants[0].StatusReason != jit.ReasonDenied {
			t.Errorf("ListApprovals(Denied) = %+v, %v; want rd with its grant ended Denied", ps, err)
		}
		return nil
	})
	// A rolled-back approval leaves the record and grant as they were.
	boom := errors.New("boom")
	err := s.InTx(context.Background(), func(tx jit.Tx) error {
		if err := approveIn(context.Background(), tx, rp, rec); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v, want %v", err, boom)
	}
	readTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		checkPendingNotActive(t, ctx, tx, p.ID, vm)
		return nil
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error { return approveIn(ctx, tx, rp, rec) })
	readTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		g, err := tx.GetGrant(ctx, "gp")
		if err != nil || g.Status != jit.StatusInitiated || !g.StartTime.Equal(t0.Add(2*time.Hour)) || !g.EndTime.Equal(t0.Add(3*time.Hour)) || g.Protocol != "UDP" {
			t.Errorf("approved grant gp = %+v, %v; want Initiated from t0+2h to t0+3h, UDP", g, err)
		}
		active, err := tx.ListGrants(ctx, jit.GrantFilter{VMID: vm, ActiveOnly: true})
		if err != nil {
			return err
		}
		if ids := grantIDs(active); len(ids) != 2 || ids[0] != "gp" || ids[1] != "g1" {
			t.Errorf("active grants after approval = %q; want [gp g1] (newest start first)", ids)
		}
		// The window is the one it opened with: at t0+2h30m only g1 is due.
		due, err := tx.DueGrants(ctx, t0.Add(150*time.Minute), 0)
		if err != nil {
			return err
		}
		if ids := grantIDs(due); len(ids) != 1 || ids[0] != "g1" {
			t.Errorf("DueGrants(t0+2h30m) after approval = %q; want [g1]", ids)
		}
		rs, err := tx.ListRequests(ctx, p.ID, 0)
		if err != nil {
			return err
		}
		if len(rs) != 2 || rs[0].ID != "rp" || rs[1].ID != "r1" {
			t.Errorf("ListRequests after approval = %d requests; want [rp r1]", len(rs))
		}
		got, err := tx.GetApproval(ctx, "rp")
		if err != nil || got.State != jit.ApprovalApproved || got.Request.Grants[0].ID != "gp" || got.Request.Grants[0].Status != jit.StatusInitiated {
			t.Errorf("GetApproval(rp) after approval = %+v, %v", got, err)
		}
		ps, err := tx.ListApprovals(ctx, jit.ApprovalPending)
		if err != nil || len(ps) != 1 || ps[0].Request.ID != "rq" {
			t.Errorf("ListApprovals(Pending) after approval = %v, %v; want [rq]", pendingIDs(ps), err)
		}
		return nil
	})
}

// approveIn opens pending request r as the service does: its grant row
// becomes Initiated with the window it opens with, and its record Approved.
func approveIn(ctx context.Context, tx jit.Tx, r jit.Request, rec jit.ApprovalRecord) error {
	g := r.Grants[0]
	g.Status, g.StatusReason = jit.StatusInitiated, jit.ReasonUserRequested
	g.StartTime, g.EndTime, g.Protocol = t0.Add(2*time.Hour), t0.Add(3*time.Hour), "UDP"
	if err := tx.UpdateGrant(ctx, g); err != nil {
		return err
	}
	rec.State, rec.DecidedAt, rec.DecidedBy = jit.ApprovalApproved, t0.Add(2*time.Hour), "carol"
	rec.Approvals = []jit.Approval{{Principal: "carol", Time: t0.Add(2 * time.Hour), Groups: []string{"ops"}}}
	return tx.PutApproval(ctx, r.ID, rec)
}

// checkPendingNotActive asserts that the pending grants gp and gq (and
// denied gd) are stored, under their IDs, and that none is active: only
// g1 (seed's) is.
func checkPendingNotActive(t *testing.T, ctx context.Context, tx jit.Tx, policyID, vm string) {
	t.Helper()
	for _, id := range []string{"gp", "gq"} {
		if g, err := tx.GetGrant(ctx, id); err != nil || g.Status != jit.StatusPending {
			t.Errorf("pending grant %s = %s, %v", id, g.Status, err)
		}
	}
	active, err := tx.ListGrants(ctx, jit.GrantFilter{VMID: vm, ActiveOnly: true})
	if ids := grantIDs(active); err != nil || len(ids) != 1 || ids[0] != "g1" {
		t.Errorf("active grants = %q, %v; want [g1]: a Pending grant is never active", ids, err)
	}
	active, err = tx.ListGrants(ctx, jit.GrantFilter{ActiveOnly: true})
	if ids := grantIDs(active); err != nil || len(ids) != 1 || ids[0] != "g1" {
		t.Errorf("all active grants = %q, %v; want [g1]", ids, err)
	}
	// gp ends at t0+32m, before g1: it must not be due nor the next end.
	due, err := tx.DueGrants(ctx, t0.Add(10*time.Hour), 0)
	if ids := grantIDs(due); err != nil || len(ids) != 1 || ids[0] != "g1" {
		t.Errorf("DueGrants = %q, %v; want [g1]", ids, err)
	}
	if next, ok, err := tx.NextEndTime(ctx); err != nil || !ok || !next.Equal(t0.Add(time.Hour)) {
		t.Errorf("NextEndTime = %v %v %v; want g1's end %v", next, ok, err, t0.Add(time.Hour))
	}
	all, err := tx.ListGrants(ctx, jit.GrantFilter{VMID: vm})
	if err != nil || len(all) != 4 {
		t.Errorf("grants of the VM = %q, %v; want g1 and the three of requests needing approval", grantIDs(all), err)
	}
	rs, err := tx.ListRequests(ctx, policyID, 0)
	if err != nil || len(rs) != 1 || rs[0].ID != "r1" {
		t.Errorf("ListRequests = %d requests, %v; want only r1 (a request not opened is not listed)", len(rs), err)
	}
}

func pendingIDs(ps []jit.PendingRequest) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Request.ID
	}
	return out
}
