package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Transactions: rollback on error and panic, cancelled contexts, concurrent writers.

// seed writes one of everything, for the rollback tests to try to change.
func seed(t *testing.T, s Store) (jit.Policy, string) {
	vm := vmID("s1", "rg1", "a")
	p := policy("s1", "rg1", "westeurope", "p", vm)
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		if err := tx.PutObject(ctx, "counter", "c", 1); err != nil {
			return err
		}
		if err := tx.PutObject(ctx, "counter", "keep", 7); err != nil {
			return err
		}
		if err := tx.PutPolicy(ctx, p); err != nil {
			return err
		}
		return tx.InsertRequest(ctx, request("r1", p.ID, t0, grant(t, "g1", p.ID, vm, 22, t0, t0.Add(time.Hour))))
	})
	return p, vm
}

// checkSeed asserts the store holds exactly what seed wrote.
func checkSeed(t *testing.T, s Store, p jit.Policy, vm string) {
	t.Helper()
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		checkSeedIn(t, ctx, tx, p, vm)
		return nil
	})
}

// checkSeedIn is checkSeed's assertions, in a transaction of the caller's.
func checkSeedIn(t *testing.T, ctx context.Context, tx jit.Tx, p jit.Policy, vm string) {
	t.Helper()
	var n int
	if err := tx.GetObject(ctx, "counter", "c", &n); err != nil || n != 1 {
		t.Errorf("counter c = %d, %v; want 1", n, err)
	}
	if err := tx.GetObject(ctx, "counter", "keep", &n); err != nil || n != 7 {
		t.Errorf("counter keep = %d, %v; want 7", n, err)
	}
	wantNotFound(t, "object written by the discarded tx", tx.GetObject(ctx, "counter", "new", &n))
	if got, err := tx.GetPolicy(ctx, p.ID); err != nil {
		t.Errorf("policy deleted by the discarded tx: %v", err)
	} else {
		sameJSON(t, "policy after the discarded tx", got, p)
	}
	if got, err := tx.PolicyForVM(ctx, vm); err != nil || got.ID != p.ID {
		t.Errorf("PolicyForVM after the discarded tx = %s, %v", got.ID, err)
	}
	_, err := tx.GetPolicy(ctx, jit.PolicyID("s1", "rg1", "westeurope", "other"))
	wantNotFound(t, "policy written by the discarded tx", err)
	_, err = tx.PolicyForVM(ctx, vmID("s1", "rg1", "other"))
	wantNotFound(t, "PolicyForVM of the discarded tx's policy", err)
	rs, err := tx.ListRequests(ctx, p.ID, 0)
	if err != nil || len(rs) != 1 {
		t.Errorf("requests after the discarded tx: %d, %v; want 1", len(rs), err)
	}
	g, err := tx.GetGrant(ctx, "g1")
	if err != nil || g.Status != jit.StatusInitiated {
		t.Errorf("grant g1 after the discarded tx: %s, %v", g.Status, err)
	}
	_, err = tx.GetGrant(ctx, "g2")
	wantNotFound(t, "grant inserted by the discarded tx", err)
	if gs, err := tx.DueGrants(ctx, t0.Add(10*time.Hour), 0); err != nil || len(gs) != 1 {
		t.Errorf("DueGrants after the discarded tx = %q, %v", grantIDs(gs), err)
	}
}

// mutateAll changes every kind of row, checking that the tx sees its own writes.
func mutateAll(t *testing.T, ctx context.Context, tx jit.Tx, p jit.Policy, vm string) error {
	if err := tx.PutObject(ctx, "counter", "c", 2); err != nil {
		return err
	}
	if err := tx.PutObject(ctx, "counter", "new", 1); err != nil {
		return err
	}
	if err := tx.DeleteObject(ctx, "counter", "keep"); err != nil {
		return err
	}
	if err := tx.DeletePolicy(ctx, p.ID); err != nil {
		return err
	}
	other := vmID("s1", "rg1", "other")
	if err := tx.PutPolicy(ctx, policy("s1", "rg1", "westeurope", "other", other, vm)); err != nil {
		return err
	}
	if err := tx.InsertRequest(ctx, request("r2", p.ID, t0.Add(time.Hour), grant(t, "g2", p.ID, vm, 22, t0, t0.Add(2*time.Hour)))); err != nil {
		return err
	}
	g, err := tx.GetGrant(ctx, "g1")
	if err != nil {
		return err
	}
	if g, err = g.End(jit.ReasonUserRequested, t0); err != nil {
		return err
	}
	if err := tx.UpdateGrant(ctx, g); err != nil {
		return err
	}
	var n int
	if err := tx.GetObject(ctx, "counter", "c", &n); err != nil || n != 2 {
		t.Errorf("tx does not see its own write: %d, %v", n, err)
	}
	if got, err := tx.PolicyForVM(ctx, vm); err != nil || got.Name != "other" {
		t.Errorf("tx does not see its own policy: %s, %v", got.ID, err)
	}
	if gs, err := tx.DueGrants(ctx, t0.Add(10*time.Hour), 0); err != nil || len(gs) != 1 || gs[0].ID != "g2" {
		t.Errorf("tx does not see its own grants: %q, %v", grantIDs(gs), err)
	}
	return nil
}

func testRollback(t *testing.T, s Store) {
	p, vm := seed(t, s)
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx jit.Tx) error {
		if err := mutateAll(t, ctx, tx, p, vm); err != nil {
			return err
		}
		return fmt.Errorf("late failure: %w", boom)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx returned %v, want fn's error", err)
	}
	checkSeed(t, s, p, vm)
}

func testRollbackOnPanic(t *testing.T, s Store) {
	p, vm := seed(t, s)
	ctx := context.Background()
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the panic to propagate", r)
			}
		}()
		_ = s.InTx(ctx, func(tx jit.Tx) error {
			if err := mutateAll(t, ctx, tx, p, vm); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	checkSeed(t, s, p, vm)
	// The store is still usable after a panic.
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error { return tx.PutObject(ctx, "counter", "after", 1) })
}

func testObjectTxRollback(t *testing.T, s Store) {
	ctx := context.Background()
	objTx(t, s, func(ctx context.Context, o store.Objects) error { return o.PutObject(ctx, "k", "a", doc{N: 1}) })
	boom := errors.New("boom")
	err := s.ObjectTx(ctx, func(o store.Objects) error {
		if err := o.PutObject(ctx, "k", "a", doc{N: 2}); err != nil {
			return err
		}
		if err := o.PutObject(ctx, "k", "b", doc{N: 2}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("ObjectTx returned %v, want fn's error", err)
	}
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		var d doc
		if err := o.GetObject(ctx, "k", "a", &d); err != nil || d.N != 1 {
			t.Errorf("k/a after rollback = %+v, %v", d, err)
		}
		wantNotFound(t, "k/b after rollback", o.GetObject(ctx, "k", "b", &d))
		return nil
	})
}

func testCancelledContext(t *testing.T, s Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.InTx(ctx, func(tx jit.Tx) error { return tx.PutObject(ctx, "k", "x", 1) })
	if err == nil {
		t.Fatal("InTx with a cancelled context succeeded")
	}
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		var n int
		wantNotFound(t, "write under a cancelled context", o.GetObject(ctx, "k", "x", &n))
		return nil
	})
}

// testConcurrentCounter: read-modify-write from many goroutines at once
// loses no update and fails none (no busy or serialisation errors escape).
func testConcurrentCounter(t *testing.T, s Store) {
	const goroutines, each = 50, 10
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for i := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				incr := func(o store.Objects) error {
					var n int
					if err := o.GetObject(ctx, "counter", "c", &n); err != nil && !errors.Is(err, store.ErrNotFound) {
						return err
					}
					return o.PutObject(ctx, "counter", "c", n+1)
				}
				var err error
				if (i+j)%2 == 0 {
					err = s.InTx(ctx, func(tx jit.Tx) error { return incr(tx) })
				} else {
					err = s.ObjectTx(ctx, incr)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent increment: %v", err)
	}
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		var n int
		if err := o.GetObject(ctx, "counter", "c", &n); err != nil {
			return err
		}
		if n != goroutines*each {
			t.Errorf("counter = %d, want %d", n, goroutines*each)
		}
		return nil
	})
}

// testConcurrentRequests: the request path's transaction (read the policy,
// list active grants, insert) from many goroutines.
func testConcurrentRequests(t *testing.T, s Store) {
	const goroutines, each = 20, 5
	vm := vmID("s1", "rg1", "a")
	p := policy("s1", "rg1", "westeurope", "p", vm)
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error { return tx.PutPolicy(ctx, p) })
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for i := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				id := fmt.Sprintf("r%d-%d", i, j)
				start := t0.Add(time.Duration(i*each+j) * time.Second)
				errs <- s.InTx(ctx, func(tx jit.Tx) error {
					if _, err := tx.GetPolicy(ctx, p.ID); err != nil {
						return err
					}
					if _, err := tx.ListGrants(ctx, jit.GrantFilter{VMID: vm, ActiveOnly: true}); err != nil {
						return err
					}
					return tx.InsertRequest(ctx, request(id, p.ID, start, grant(t, "g"+id, p.ID, vm, 22, start, start.Add(time.Hour))))
				})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent request: %v", err)
		}
	}
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		rs, err := tx.ListRequests(ctx, p.ID, 0)
		if err != nil {
			return err
		}
		if len(rs) != goroutines*each {
			t.Errorf("%d requests stored, want %d", len(rs), goroutines*each)
		}
		gs, err := tx.ListGrants(ctx, jit.GrantFilter{VMID: vm, ActiveOnly: true})
		if err != nil {
			return err
		}
		if len(gs) != goroutines*each {
			t.Errorf("%d active grants, want %d", len(gs), goroutines*each)
		}
		return nil
	})
}
