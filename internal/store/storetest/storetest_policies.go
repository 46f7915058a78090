package storetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// JIT policies: CRUD, one policy per VM, scoped listings, times kept to the nanosecond.

func testPolicies(t *testing.T, s Store) {
	vmA, vmB, vmC := vmID("s1", "rg1", "a"), vmID("s1", "rg1", "b"), vmID("s1", "rg1", "c")
	p := policy("s1", "rg1", "westeurope", "p1", vmA, vmB)
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		if err := tx.PutPolicy(ctx, p); err != nil {
			return err
		}
		// Read-your-writes inside the same transaction.
		got, err := tx.GetPolicy(ctx, p.ID)
		if err != nil {
			return err
		}
		sameJSON(t, "GetPolicy in tx", got, p)
		return nil
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		got, err := tx.GetPolicy(ctx, strings.ToUpper(p.ID))
		if err != nil {
			return err
		}
		sameJSON(t, "GetPolicy upper-case ID", got, p)
		_, err = tx.GetPolicy(ctx, jit.PolicyID("s1", "rg1", "westeurope", "nope"))
		wantNotFound(t, "GetPolicy missing", err)

		for _, v := range []string{vmA, strings.ToUpper(vmB)} {
			got, err := tx.PolicyForVM(ctx, v)
			if err != nil {
				t.Errorf("PolicyForVM(%s): %v", v, err)
			} else if got.ID != p.ID {
				t.Errorf("PolicyForVM(%s) = %s", v, got.ID)
			}
		}
		_, err = tx.PolicyForVM(ctx, vmC)
		wantNotFound(t, "PolicyForVM unguarded", err)

		// Replacing the policy re-indexes its VMs: A leaves, C joins.
		p.VirtualMachines = policy("s1", "rg1", "westeurope", "p1", vmB, vmC).VirtualMachines
		p.ProvisioningState = jit.ProvisioningUpdating
		return tx.PutPolicy(ctx, p)
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		got, err := tx.GetPolicy(ctx, p.ID)
		if err != nil {
			return err
		}
		sameJSON(t, "GetPolicy after replace", got, p)
		_, err = tx.PolicyForVM(ctx, vmA)
		wantNotFound(t, "PolicyForVM of VM removed from policy", err)
		if got, err := tx.PolicyForVM(ctx, vmC); err != nil || got.ID != p.ID {
			t.Errorf("PolicyForVM(vmC) = %s, %v", got.ID, err)
		}
		// vmA is free now: another policy may take it.
		return tx.PutPolicy(ctx, policy("s1", "rg1", "westeurope", "p2", vmA))
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		if err := tx.DeletePolicy(ctx, strings.ToUpper(p.ID)); err != nil {
			return err
		}
		_, err := tx.GetPolicy(ctx, p.ID)
		wantNotFound(t, "GetPolicy deleted", err)
		for _, v := range []string{vmB, vmC} {
			_, err := tx.PolicyForVM(ctx, v)
			wantNotFound(t, "PolicyForVM after delete", err)
		}
		wantNotFound(t, "DeletePolicy missing", tx.DeletePolicy(ctx, p.ID))
		// Its VMs are free for another policy.
		return tx.PutPolicy(ctx, policy("s1", "rg1", "westeurope", "p3", vmB, vmC))
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		got, err := tx.PolicyForVM(ctx, vmB)
		if err != nil || got.Name != "p3" {
			t.Errorf("PolicyForVM(vmB) after re-adding = %s, %v", got.ID, err)
		}
		got, err = tx.PolicyForVM(ctx, vmA)
		if err != nil || got.Name != "p2" {
			t.Errorf("PolicyForVM(vmA) = %s, %v", got.ID, err)
		}
		return nil
	})
}

func testPolicyConflict(t *testing.T, s Store) {
	ctx := context.Background()
	vmA, vmB := vmID("s1", "rg1", "a"), vmID("s1", "rg1", "b")
	p1 := policy("s1", "rg1", "westeurope", "p1", vmA)
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error { return tx.PutPolicy(ctx, p1) })

	// vmA (spelled in another case) is in p1 already.
	p2 := policy("s1", "rg1", "westeurope", "p2", vmB, strings.ToUpper(vmA))
	err := s.InTx(ctx, func(tx jit.Tx) error { return tx.PutPolicy(ctx, p2) })
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutPolicy with a VM of another policy: %v, want ErrConflict", err)
	}
	if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(vmA)) {
		t.Errorf("conflict error %q does not name the VM %s", err, vmA)
	}
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		_, err := tx.GetPolicy(ctx, p2.ID)
		wantNotFound(t, "GetPolicy of conflicting policy", err)
		_, err = tx.PolicyForVM(ctx, vmB)
		wantNotFound(t, "PolicyForVM of the conflicting policy's other VM", err)
		got, err := tx.PolicyForVM(ctx, vmA)
		if err != nil || got.ID != p1.ID {
			t.Errorf("PolicyForVM(vmA) = %s, %v; want it still in p1", got.ID, err)
		}
		// Re-putting p1 with its own VM is not a conflict.
		return tx.PutPolicy(ctx, p1)
	})
}

func testListPolicies(t *testing.T, s Store) {
	a := policy("s1", "rg1", "westeurope", "a", vmID("s1", "rg1", "va"))
	b := policy("s1", "rg2", "eastus", "b", vmID("s1", "rg2", "vb"))
	c := policy("S10", "rg1", "WestEurope", "c", vmID("S10", "rg1", "vc")) // s10 must not fall inside scope s1
	d := policy("s2", "RG1", "westeurope", "d", vmID("s2", "RG1", "vd"))
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		for _, p := range []jit.Policy{d, c, b, a} {
			if err := tx.PutPolicy(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
	cases := []struct {
		scope, location string
		want            []string
	}{
		{"/", "", []string{"a", "b", "c", "d"}},
		{"", "", []string{"a", "b", "c", "d"}},
		{"/subscriptions/S1", "", []string{"a", "b"}},
		{"/subscriptions/s1/", "", []string{"a", "b"}},
		{"/subscriptions/s10", "", []string{"c"}},
		{"/subscriptions/s1/resourceGroups/RG1", "", []string{"a"}},
		{"/subscriptions/s2/resourcegroups/rg1", "", []string{"d"}},
		{"/subscriptions/s1/resourceGroups/rg", "", nil},
		{strings.ToUpper(a.ID), "", []string{"a"}},
		{"/subscriptions/s3", "", nil},
		{"/", "WESTEUROPE", []string{"a", "c", "d"}},
		{"", "eastus", []string{"b"}},
		{"/subscriptions/s1", "westeurope", []string{"a"}},
		{"/", "northeurope", nil},
	}
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		for _, tc := range cases {
			ps, err := tx.ListPolicies(ctx, tc.scope, tc.location)
			if err != nil {
				return err
			}
			var names []string
			for _, p := range ps {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, tc.want) {
				t.Errorf("ListPolicies(%q, %q) = %q, want %q", tc.scope, tc.location, names, tc.want)
			}
		}
		ps, err := tx.ListPolicies(ctx, "/", "")
		if err != nil {
			return err
		}
		if len(ps) == 4 {
			sameJSON(t, "ListPolicies body", ps[2], c)
		}
		return nil
	})
}

// testTimesRoundTrip: times written in any zone come back as the same
// instant in UTC, to the nanosecond, in every place a backend stores them.
func testTimesRoundTrip(t *testing.T, s Store) {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	at := time.Date(2031, 7, 8, 9, 10, 11, 987654321, zone)
	vm := vmID("s1", "rg1", "a")
	p := policy("s1", "rg1", "westeurope", "p", vm)
	p.CreatedAt, p.UpdatedAt = at, at.Add(time.Nanosecond)
	g := grant(t, "g1", p.ID, vm, 22, at, at.Add(time.Hour+time.Nanosecond))
	r := request("r1", p.ID, at, g)
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		if err := tx.PutPolicy(ctx, p); err != nil {
			return err
		}
		return tx.InsertRequest(ctx, r)
	})
	check := func(what string, got, want time.Time) {
		t.Helper()
		if !got.Equal(want) || got.Location() != time.UTC || got.Nanosecond() != want.Nanosecond() {
			t.Errorf("%s = %v, want %v in UTC", what, got, want.UTC())
		}
	}
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		gp, err := tx.GetPolicy(ctx, p.ID)
		if err != nil {
			return err
		}
		check("policy CreatedAt", gp.CreatedAt, p.CreatedAt)
		check("policy UpdatedAt", gp.UpdatedAt, p.UpdatedAt)
		gg, err := tx.GetGrant(ctx, "g1")
		if err != nil {
			return err
		}
		check("grant StartTime", gg.StartTime, g.StartTime)
		check("grant EndTime", gg.EndTime, g.EndTime)
		rs, err := tx.ListRequests(ctx, p.ID, 0)
		if err != nil {
			return err
		}
		if len(rs) != 1 {
			t.Fatalf("ListRequests: %d requests", len(rs))
		}
		check("request StartTime", rs[0].StartTime, r.StartTime)
		next, ok, err := tx.NextEndTime(ctx)
		if err != nil || !ok {
			t.Fatalf("NextEndTime: %v %v", ok, err)
		}
		check("NextEndTime", next, g.EndTime)
		gg.Status, gg.StatusReason = jit.StatusRevoked, jit.ReasonUserRequested
		gg.EndedAt, gg.AppliedAt, gg.Applied = at.Add(time.Minute+3), at.Add(time.Minute+7), true
		return tx.UpdateGrant(ctx, gg)
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		gg, err := tx.GetGrant(ctx, "g1")
		if err != nil {
			return err
		}
		check("grant EndedAt", gg.EndedAt, at.Add(time.Minute+3))
		check("grant AppliedAt", gg.AppliedAt, at.Add(time.Minute+7))
		return nil
	})
}
