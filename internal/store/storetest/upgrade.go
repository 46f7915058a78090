package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// Legacy approvals are what drawbridge stored before requests that need
// approval became rows: objects of kind jit.pending (a request waiting,
// with Pending grants that existed nowhere else) and jit.decided (denied
// or lapsed with their grants ended, or approved with its opened request
// and grants stored as rows under the same IDs).
const (
	legacyKindPending = "jit.pending"
	legacyKindDecided = "jit.decided"
)

// WriteLegacyApprovals stores in s, as the older version did, one pending,
// one denied and one approved request of a policy on one VM. A backend's
// test writes them, reopens the store (which upgrades them) and calls
// CheckUpgradedApprovals.
func WriteLegacyApprovals(t *testing.T, s Store) {
	t.Helper()
	vm := vmID("s1", "rg1", "legacy")
	p := policy("s1", "rg1", "westeurope", "legacy", vm)
	rec := jit.ApprovalRecord{Rules: []jit.ApprovalRule{{Approvers: "ops", Count: 1}}, Approvals: []jit.Approval{}, State: jit.ApprovalPending, LapseAt: t0.Add(time.Hour)}
	pending := jit.PendingRequest{Request: pendingRequest(t, "lp", p.ID, vm, 22, t0.Add(2*time.Minute), "lgp"), ApprovalRecord: rec}
	denied := jit.PendingRequest{Request: pendingRequest(t, "ld", p.ID, vm, 3389, t0, "lgd"), ApprovalRecord: rec}
	denied.State, denied.DecidedAt, denied.DecidedBy, denied.Reason = jit.ApprovalDenied, t0.Add(time.Minute), "bob", "no"
	denied.Request.Grants[0].Status, denied.Request.Grants[0].StatusReason, denied.Request.Grants[0].EndedAt = jit.StatusRevoked, jit.ReasonDenied, t0.Add(time.Minute)
	approved := jit.PendingRequest{Request: pendingRequest(t, "la", p.ID, vm, 3390, t0.Add(time.Minute), "lga"), ApprovalRecord: rec}
	approved.State, approved.DecidedAt, approved.DecidedBy = jit.ApprovalApproved, t0.Add(3*time.Minute), "carol"
	approved.Approvals = []jit.Approval{{Principal: "carol", Time: t0.Add(3 * time.Minute), Groups: []string{"ops"}}}
	opened := approved.Request
	opened.Grants = []jit.Grant{grant(t, "lga", p.ID, vm, 3390, t0.Add(3*time.Minute), t0.Add(33*time.Minute))}
	opened.Grants[0].RequestID = opened.ID
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		if err := tx.PutPolicy(ctx, p); err != nil {
			return err
		}
		if err := tx.InsertRequest(ctx, opened); err != nil {
			return err
		}
		if err := tx.PutObject(ctx, legacyKindPending, pending.Request.ID, pending); err != nil {
			return err
		}
		if err := tx.PutObject(ctx, legacyKindDecided, denied.Request.ID, denied); err != nil {
			return err
		}
		return tx.PutObject(ctx, legacyKindDecided, approved.Request.ID, approved)
	})
}

// CheckUpgradedApprovals asserts that the requests WriteLegacyApprovals
// wrote are rows now: the pending one with its Pending grant (not active)
// under the same ID, the denied one with its ended grant, the approved one
// with its record on its opened request; and that no legacy object is left.
func CheckUpgradedApprovals(t *testing.T, s Store) {
	t.Helper()
	vm := vmID("s1", "rg1", "legacy")
	readTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		ps, err := tx.ListApprovals(ctx, jit.ApprovalPending)
		if err != nil {
			return err
		}
		if len(ps) != 1 || ps[0].Request.ID != "lp" || len(ps[0].Request.Grants) != 1 || ps[0].Request.Grants[0].ID != "lgp" ||
			ps[0].Request.Grants[0].Status != jit.StatusPending || !ps[0].LapseAt.Equal(t0.Add(time.Hour)) || ps[0].Request.Justification != "deploy lp" {
			t.Errorf("pending after upgrade = %+v", ps)
		}
		d, err := tx.GetApproval(ctx, "ld")
		if err != nil || d.State != jit.ApprovalDenied || d.Reason != "no" || len(d.Request.Grants) != 1 || d.Request.Grants[0].StatusReason != jit.ReasonDenied {
			t.Errorf("denied after upgrade = %+v, %v", d, err)
		}
		a, err := tx.GetApproval(ctx, "la")
		if err != nil || a.State != jit.ApprovalApproved || len(a.Approvals) != 1 || len(a.Request.Grants) != 1 ||
			a.Request.Grants[0].ID != "lga" || a.Request.Grants[0].Status != jit.StatusInitiated {
			t.Errorf("approved after upgrade = %+v, %v", a, err)
		}
		active, err := tx.ListGrants(ctx, jit.GrantFilter{VMID: vm, ActiveOnly: true})
		if ids := grantIDs(active); err != nil || len(ids) != 1 || ids[0] != "lga" {
			t.Errorf("active grants after upgrade = %q, %v; want [lga]", ids, err)
		}
		for _, kind := range []string{legacyKindPending, legacyKindDecided} {
			err := tx.ListObjects(ctx, kind, func(key string, _ []byte) error {
				t.Errorf("%s %s left among the objects", kind, key)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	var n int
	if err := s.InTx(context.Background(), func(tx jit.Tx) error {
		var err error
		n, err = jit.UpgradeApprovalObjects(context.Background(), tx)
		return err
	}); err != nil || n != 0 {
		t.Errorf("upgrading again moved %d, %v; want 0", n, err)
	}
}
