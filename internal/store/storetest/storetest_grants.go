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

// Requests and grants: insertion, listings and their order, filters, due grants.

func testRequests(t *testing.T, s Store) {
	ctx := context.Background()
	vmA, vmB, vmC := vmID("s1", "rg1", "a"), vmID("s1", "rg1", "b"), vmID("s1", "rg1", "c")
	p := policy("s1", "rg1", "westeurope", "p", vmA, vmB)
	q := policy("s1", "rg1", "westeurope", "q", vmC)
	end := t0.Add(3 * time.Hour)
	r1 := request("r1", p.ID, t0,
		grant(t, "g1", p.ID, vmA, 22, t0, end),
		grant(t, "g2", p.ID, vmA, 3389, t0, end),
		grant(t, "g3", p.ID, vmB, 22, t0, end))
	r1.Grants[2].Source = jit.AnySource
	r2 := request("r2", p.ID, t0.Add(time.Hour), grant(t, "g4", p.ID, vmA, 22, t0.Add(time.Hour), end))
	r3 := request("r3", p.ID, t0.Add(2*time.Hour), grant(t, "g5", p.ID, vmB, 3389, t0.Add(2*time.Hour), end))
	rq := request("rq", q.ID, t0.Add(3*time.Hour), grant(t, "g6", q.ID, vmC, 22, t0.Add(3*time.Hour), end.Add(time.Hour)))
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		for _, pol := range []jit.Policy{p, q} {
			if err := tx.PutPolicy(ctx, pol); err != nil {
				return err
			}
		}
		// Inserted out of time order: listing sorts by start time.
		for _, r := range []jit.Request{r2, r1, rq, r3} {
			if err := tx.InsertRequest(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		rs, err := tx.ListRequests(ctx, strings.ToUpper(p.ID), 0)
		if err != nil {
			return err
		}
		sameJSON(t, "ListRequests(p)", rs, []jit.Request{r3, r2, r1})
		rs, err = tx.ListRequests(ctx, p.ID, 2)
		if err != nil {
			return err
		}
		sameJSON(t, "ListRequests(p, limit 2)", rs, []jit.Request{r3, r2})
		rs, err = tx.ListRequests(ctx, q.ID, 0)
		if err != nil {
			return err
		}
		sameJSON(t, "ListRequests(q)", rs, []jit.Request{rq})
		rs, err = tx.ListRequests(ctx, jit.PolicyID("s1", "rg1", "westeurope", "none"), 0)
		if err != nil || len(rs) != 0 {
			t.Errorf("ListRequests(unknown policy) = %d requests, %v", len(rs), err)
		}
		// Attached grants are the current ones, not a copy taken at insert.
		g, err := tx.GetGrant(ctx, "g2")
		if err != nil {
			return err
		}
		g, err = g.End(jit.ReasonUserRequested, t0.Add(time.Minute))
		if err != nil {
			return err
		}
		return tx.UpdateGrant(ctx, g)
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		rs, err := tx.ListRequests(ctx, p.ID, 0)
		if err != nil {
			return err
		}
		if len(rs) != 3 || len(rs[2].Grants) != 3 {
			t.Fatalf("ListRequests: %+v", rs)
		}
		if g := rs[2].Grants[1]; g.ID != "g2" || g.Status != jit.StatusRevoked || !g.EndedAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("grant g2 as attached to its request: %+v", g)
		}
		return nil
	})
	// A request ID is unique.
	err := s.InTx(ctx, func(tx jit.Tx) error {
		return tx.InsertRequest(ctx, request("r1", p.ID, t0.Add(5*time.Hour), grant(t, "g9", p.ID, vmA, 22, t0, end)))
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("InsertRequest with an existing ID: %v, want ErrConflict", err)
	}
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		_, err := tx.GetGrant(ctx, "g9")
		wantNotFound(t, "grant of the rejected request", err)
		return nil
	})
}

func testGrants(t *testing.T, s Store) {
	vm := vmID("s1", "rg1", "a")
	p := policy("s1", "rg1", "westeurope", "p", vm)
	g1 := grant(t, "g1", p.ID, vm, 22, t0, t0.Add(time.Hour))
	g1.Source = mustSource(t, "2001:2::/48")
	g1.Protocol = "*"
	r := request("r1", p.ID, t0, g1)
	g1 = r.Grants[0]
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		if err := tx.PutPolicy(ctx, p); err != nil {
			return err
		}
		if err := tx.InsertRequest(ctx, r); err != nil {
			return err
		}
		got, err := tx.GetGrant(ctx, "g1")
		if err != nil {
			return err
		}
		sameJSON(t, "GetGrant", got, g1)
		_, err = tx.GetGrant(ctx, "nope")
		wantNotFound(t, "GetGrant missing", err)
		wantNotFound(t, "UpdateGrant missing", tx.UpdateGrant(ctx, grant(t, "nope", p.ID, vm, 22, t0, t0)))

		upd := got
		upd.Status, upd.StatusReason = jit.StatusRevoked, jit.ReasonExpired
		upd.EndedAt = t0.Add(time.Hour)
		upd.Applied, upd.AppliedAt = true, t0.Add(time.Hour+time.Second)
		upd.ProviderError = "nsg busy"
		// Not mutable: UpdateGrant must keep the stored values.
		upd.Port, upd.EndTime, upd.VMID = 9999, t0.Add(100*time.Hour), vmID("s9", "rg9", "z")
		return tx.UpdateGrant(ctx, upd)
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		got, err := tx.GetGrant(ctx, "g1")
		if err != nil {
			return err
		}
		want := g1
		want.Status, want.StatusReason = jit.StatusRevoked, jit.ReasonExpired
		want.EndedAt = t0.Add(time.Hour)
		want.Applied, want.AppliedAt = true, t0.Add(time.Hour+time.Second)
		want.ProviderError = "nsg busy"
		sameJSON(t, "GetGrant after UpdateGrant", got, want)
		return nil
	})
}

func testListGrants(t *testing.T, s Store) {
	vmA, vmB := vmID("s1", "rg1", "a"), vmID("s1", "rg1", "b")
	vmC := vmID("s1", "rg1", "c")
	p := policy("s1", "rg1", "westeurope", "p", vmA, vmB)
	q := policy("s1", "rg1", "westeurope", "q", vmC)
	end := t0.Add(24 * time.Hour)
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		for _, pol := range []jit.Policy{p, q} {
			if err := tx.PutPolicy(ctx, pol); err != nil {
				return err
			}
		}
		for _, r := range []jit.Request{
			request("r1", p.ID, t0,
				grant(t, "a22-old", p.ID, vmA, 22, t0, end),
				grant(t, "a3389", p.ID, vmA, 3389, t0, end),
				grant(t, "b22", p.ID, vmB, 22, t0, end)),
			request("r2", p.ID, t0.Add(time.Hour), grant(t, "a22-new", p.ID, vmA, 22, t0.Add(time.Hour), end)),
			request("r3", q.ID, t0.Add(2*time.Hour), grant(t, "c22", q.ID, vmC, 22, t0.Add(2*time.Hour), end)),
		} {
			if err := tx.InsertRequest(ctx, r); err != nil {
				return err
			}
		}
		g, err := tx.GetGrant(ctx, "a22-old")
		if err != nil {
			return err
		}
		g, err = g.End(jit.ReasonNewerRequestInitiated, t0.Add(time.Hour))
		if err != nil {
			return err
		}
		return tx.UpdateGrant(ctx, g)
	})
	cases := []struct {
		name string
		f    jit.GrantFilter
		want []string // sorted
	}{
		{"all", jit.GrantFilter{}, []string{"a22-new", "a22-old", "a3389", "b22", "c22"}},
		{"vm, other case", jit.GrantFilter{VMID: strings.ToUpper(vmA)}, []string{"a22-new", "a22-old", "a3389"}},
		{"vm and port", jit.GrantFilter{VMID: vmA, Port: 22}, []string{"a22-new", "a22-old"}},
		{"vm active", jit.GrantFilter{VMID: vmA, ActiveOnly: true}, []string{"a22-new", "a3389"}},
		{"vm port active", jit.GrantFilter{VMID: vmA, Port: 22, ActiveOnly: true}, []string{"a22-new"}},
		{"port", jit.GrantFilter{Port: 22}, []string{"a22-new", "a22-old", "b22", "c22"}},
		{"policy, other case", jit.GrantFilter{PolicyID: strings.ToUpper(p.ID)}, []string{"a22-new", "a22-old", "a3389", "b22"}},
		{"policy active port", jit.GrantFilter{PolicyID: p.ID, Port: 22, ActiveOnly: true}, []string{"a22-new", "b22"}},
		{"active", jit.GrantFilter{ActiveOnly: true}, []string{"a22-new", "a3389", "b22", "c22"}},
		{"unknown vm", jit.GrantFilter{VMID: vmID("s1", "rg1", "zzz")}, nil},
		{"limit newest", jit.GrantFilter{VMID: vmA, Limit: 1}, []string{"a22-new"}},
		{"limit all newest", jit.GrantFilter{Limit: 2}, []string{"a22-new", "c22"}},
	}
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		for _, tc := range cases {
			gs, err := tx.ListGrants(ctx, tc.f)
			if err != nil {
				return err
			}
			if got := sortedIDs(gs); !slices.Equal(got, tc.want) {
				t.Errorf("ListGrants %s = %q, want %q", tc.name, got, tc.want)
			}
			for i := 1; i < len(gs); i++ {
				if gs[i].StartTime.After(gs[i-1].StartTime) {
					t.Errorf("ListGrants %s: not newest first: %q", tc.name, grantIDs(gs))
					break
				}
			}
		}
		return nil
	})
}

func testDueGrants(t *testing.T, s Store) {
	vm := vmID("s1", "rg1", "a")
	p := policy("s1", "rg1", "westeurope", "p", vm)
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		if _, ok, err := tx.NextEndTime(ctx); err != nil || ok {
			t.Errorf("NextEndTime on an empty store: ok=%v err=%v", ok, err)
		}
		if gs, err := tx.DueGrants(ctx, t0.Add(1000*time.Hour), 0); err != nil || len(gs) != 0 {
			t.Errorf("DueGrants on an empty store: %q %v", grantIDs(gs), err)
		}
		if err := tx.PutPolicy(ctx, p); err != nil {
			return err
		}
		min := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
		if err := tx.InsertRequest(ctx, request("r1", p.ID, t0,
			grant(t, "e10", p.ID, vm, 1, t0, min(10)),
			grant(t, "e5a", p.ID, vm, 2, t0, min(5)),
			grant(t, "e20", p.ID, vm, 3, t0, min(20)),
			grant(t, "e1-revoked", p.ID, vm, 4, t0, min(1)),
		)); err != nil {
			return err
		}
		if err := tx.InsertRequest(ctx, request("r2", p.ID, t0, grant(t, "e5b", p.ID, vm, 5, t0, min(5)))); err != nil {
			return err
		}
		g, err := tx.GetGrant(ctx, "e1-revoked")
		if err != nil {
			return err
		}
		g, err = g.End(jit.ReasonUserRequested, t0)
		if err != nil {
			return err
		}
		return tx.UpdateGrant(ctx, g)
	})
	min := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	due := func(ctx context.Context, tx jit.Tx, now time.Time, limit int) []jit.Grant {
		t.Helper()
		gs, err := tx.DueGrants(ctx, now, limit)
		if err != nil {
			t.Fatalf("DueGrants: %v", err)
		}
		for i, g := range gs {
			if g.Status != jit.StatusInitiated || g.EndTime.After(now) {
				t.Errorf("DueGrants(%v) returned %s ending %v with status %s", now, g.ID, g.EndTime, g.Status)
			}
			if i > 0 && g.EndTime.Before(gs[i-1].EndTime) {
				t.Errorf("DueGrants not oldest end first: %q", grantIDs(gs))
			}
		}
		return gs
	}
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		next, ok, err := tx.NextEndTime(ctx)
		if err != nil || !ok || !next.Equal(min(5)) {
			t.Errorf("NextEndTime = %v %v %v, want %v (the revoked grant ending at 1m does not count)", next, ok, err, min(5))
		}
		if gs := due(ctx, tx, min(4), 0); len(gs) != 0 {
			t.Errorf("DueGrants(4m) = %q, want none (revoked grants are never due)", grantIDs(gs))
		}
		// The end time itself is due ("at or before now").
		if got := sortedIDs(due(ctx, tx, min(5), 0)); !slices.Equal(got, []string{"e5a", "e5b"}) {
			t.Errorf("DueGrants(5m) = %q", got)
		}
		gs := due(ctx, tx, min(10), 0)
		if got := grantIDs(gs); len(got) != 3 || got[2] != "e10" {
			t.Errorf("DueGrants(10m) = %q, want e5a and e5b then e10", got)
		}
		if got := sortedIDs(due(ctx, tx, min(10), 2)); !slices.Equal(got, []string{"e5a", "e5b"}) {
			t.Errorf("DueGrants(10m, limit 2) = %q", got)
		}
		// now in another zone is the same instant.
		if gs := due(ctx, tx, min(60).In(time.FixedZone("x", -7*3600)), 0); len(gs) != 4 {
			t.Errorf("DueGrants(60m) = %q, want 4 grants", grantIDs(gs))
		}
		// Expire everything; nothing is left to wait for.
		for _, g := range due(ctx, tx, min(60), 0) {
			ended, err := g.End(jit.ReasonExpired, min(60))
			if err != nil {
				return err
			}
			if err := tx.UpdateGrant(ctx, ended); err != nil {
				return err
			}
		}
		if next, ok, err := tx.NextEndTime(ctx); err != nil || ok {
			t.Errorf("NextEndTime with no initiated grants = %v %v %v", next, ok, err)
		}
		if gs := due(ctx, tx, min(1000), 0); len(gs) != 0 {
			t.Errorf("DueGrants after expiring all = %q", grantIDs(gs))
		}
		return nil
	})
}
