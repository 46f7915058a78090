package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// testActiveGrantUpdates: a VM's active grants as listed right after an
// update of one of them that leaves it active (an agent's report marking
// it applied) show the update, in the same transaction, in the next one
// and in a read transaction; an update rolled back does not show.
func testActiveGrantUpdates(t *testing.T, s Store) {
	_, vm := seed(t, s)
	applied := t0.Add(time.Minute)
	list := func(ctx context.Context, tx jit.Tx) jit.Grant {
		t.Helper()
		gs, err := tx.ListGrants(ctx, jit.GrantFilter{VMID: vm, ActiveOnly: true})
		if err != nil || len(gs) != 1 {
			t.Fatalf("active grants of %s = %q, %v; want [g1]", vm, grantIDs(gs), err)
		}
		return gs[0]
	}
	want := func(where string, g jit.Grant, providerErr string) {
		t.Helper()
		if !g.Applied || !g.AppliedAt.Equal(applied) || g.ProviderError != providerErr {
			t.Errorf("%s: g1 applied %v at %v, error %q; want applied at %v, error %q", where, g.Applied, g.AppliedAt, g.ProviderError, applied, providerErr)
		}
	}
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		g := list(ctx, tx)
		if g.Applied {
			t.Errorf("g1 applied before any update")
		}
		g.Applied, g.AppliedAt, g.ProviderError = true, applied, "first"
		if err := tx.UpdateGrant(ctx, g); err != nil {
			return err
		}
		want("same transaction", list(ctx, tx), "first")
		return nil
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		want("next transaction", list(ctx, tx), "first")
		return nil
	})
	boom := errors.New("boom")
	err := s.InTx(context.Background(), func(tx jit.Tx) error {
		g := list(context.Background(), tx)
		g.ProviderError = "rolled back"
		if err := tx.UpdateGrant(context.Background(), g); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v, want %v", err, boom)
	}
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		want("after a rolled-back update", list(ctx, tx), "first")
		return nil
	})
	readTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		want("read transaction", list(ctx, tx), "first")
		return nil
	})
}
