package storetest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Read-only transactions (jit.Store.ReadTx, store.ObjectStore.ObjectReadTx):
// what they see, what they keep, and how they run beside writers.

func readTx(t *testing.T, s Store, fn func(ctx context.Context, tx jit.Tx) error) {
	t.Helper()
	ctx := context.Background()
	if err := s.ReadTx(ctx, func(tx jit.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("ReadTx: %v", err)
	}
}

func objReadTx(t *testing.T, s Store, fn func(ctx context.Context, o store.Objects) error) {
	t.Helper()
	ctx := context.Background()
	if err := s.ObjectReadTx(ctx, func(o store.Objects) error { return fn(ctx, o) }); err != nil {
		t.Fatalf("ObjectReadTx: %v", err)
	}
}

// testReadTxSeesCommitted: ReadTx and ObjectReadTx see everything
// committed before they began, through every read of jit.Tx.
func testReadTxSeesCommitted(t *testing.T, s Store) {
	p, vm := seed(t, s)
	readTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		checkSeedIn(t, ctx, tx, p, vm)
		ps, err := tx.ListPolicies(ctx, "/", "")
		if err != nil || len(ps) != 1 || ps[0].ID != p.ID {
			t.Errorf("ListPolicies in ReadTx = %d policies, %v; want [%s]", len(ps), err, p.ID)
		}
		gs, err := tx.ListGrants(ctx, jit.GrantFilter{VMID: vm, ActiveOnly: true})
		if err != nil || !slices.Equal(grantIDs(gs), []string{"g1"}) {
			t.Errorf("ListGrants in ReadTx = %q, %v; want [g1]", grantIDs(gs), err)
		}
		if next, ok, err := tx.NextEndTime(ctx); err != nil || !ok || !next.Equal(t0.Add(time.Hour)) {
			t.Errorf("NextEndTime in ReadTx = %v, %v, %v; want %v", next, ok, err, t0.Add(time.Hour))
		}
		return nil
	})
	objReadTx(t, s, func(ctx context.Context, o store.Objects) error {
		var n int
		if err := o.GetObject(ctx, "counter", "keep", &n); err != nil || n != 7 {
			t.Errorf("ObjectReadTx: counter keep = %d, %v; want 7", n, err)
		}
		var keys []string
		if err := o.ListObjects(ctx, "counter", func(key string, _ []byte) error {
			keys = append(keys, key)
			return nil
		}); err != nil {
			return err
		}
		if want := []string{"c", "keep"}; !slices.Equal(keys, want) {
			t.Errorf("ObjectReadTx: counter keys = %q, want %q", keys, want)
		}
		return nil
	})
	// A read-only transaction is not a stale cache: what commits after one
	// ended is seen by the next.
	objTx(t, s, func(ctx context.Context, o store.Objects) error { return o.PutObject(ctx, "counter", "c", 5) })
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error { return tx.DeletePolicy(ctx, p.ID) })
	readTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		var n int
		if err := tx.GetObject(ctx, "counter", "c", &n); err != nil || n != 5 {
			t.Errorf("ReadTx after a later commit: counter c = %d, %v; want 5", n, err)
		}
		_, err := tx.GetPolicy(ctx, p.ID)
		wantNotFound(t, "ReadTx after the policy was deleted", err)
		return nil
	})
	objReadTx(t, s, func(ctx context.Context, o store.Objects) error {
		var n int
		if err := o.GetObject(ctx, "counter", "c", &n); err != nil || n != 5 {
			t.Errorf("ObjectReadTx after a later commit: counter c = %d, %v; want 5", n, err)
		}
		return nil
	})
}

// testReadTxSnapshot: a ReadTx reads one snapshot. A write that commits
// while it runs (on backends where it can) is not seen by its later reads;
// on backends where the write waits for the ReadTx, it is not seen either.
func testReadTxSnapshot(t *testing.T, s Store) {
	objTx(t, s, func(ctx context.Context, o store.Objects) error { return o.PutObject(ctx, "counter", "c", 1) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var writeDone chan error
	err := s.ReadTx(ctx, func(tx jit.Tx) error {
		var n int
		if err := tx.GetObject(ctx, "counter", "c", &n); err != nil {
			return err
		}
		if n != 1 {
			t.Errorf("first read: counter c = %d, want 1", n)
		}
		if writeDone == nil { // a retried fn does not write again
			writeDone = make(chan error, 1)
			go func() {
				writeDone <- s.ObjectTx(ctx, func(o store.Objects) error { return o.PutObject(ctx, "counter", "c", 2) })
			}()
			select {
			case err := <-writeDone:
				// The write committed while this ReadTx runs.
				writeDone <- err
			case <-time.After(200 * time.Millisecond):
				// The backend queues the write behind this ReadTx.
			}
		}
		if err := tx.GetObject(ctx, "counter", "c", &n); err != nil {
			return err
		}
		if n != 1 {
			t.Errorf("second read in the same ReadTx: counter c = %d, want 1 (a write committed meanwhile is not part of its snapshot)", n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ReadTx: %v", err)
	}
	if err := <-writeDone; err != nil {
		t.Fatalf("write beside the ReadTx: %v", err)
	}
	objReadTx(t, s, func(ctx context.Context, o store.Objects) error {
		var n int
		if err := o.GetObject(ctx, "counter", "c", &n); err != nil || n != 2 {
			t.Errorf("after the write: counter c = %d, %v; want 2", n, err)
		}
		return nil
	})
}

// tryWrites attempts every kind of write, each on its own, and reports
// their errors: a backend may refuse them in a read-only transaction, or
// accept them and never commit them.
func tryWrites(t *testing.T, ctx context.Context, tx jit.Tx, p jit.Policy, vm string) []error {
	g1, err := tx.GetGrant(ctx, "g1")
	if err == nil {
		g1, err = g1.End(jit.ReasonUserRequested, t0)
	}
	if err != nil {
		t.Errorf("reading g1 in ReadTx: %v", err)
	}
	other := vmID("s1", "rg1", "other")
	return []error{
		tx.PutObject(ctx, "counter", "c", 2),
		tx.PutObject(ctx, "counter", "new", 1),
		tx.DeleteObject(ctx, "counter", "keep"),
		tx.DeletePolicy(ctx, p.ID),
		tx.PutPolicy(ctx, policy("s1", "rg1", "westeurope", "other", other, vm)),
		tx.InsertRequest(ctx, request("r2", p.ID, t0.Add(time.Hour), grant(t, "g2", p.ID, vm, 22, t0, t0.Add(2*time.Hour)))),
		tx.UpdateGrant(ctx, g1),
	}
}

// testReadTxKeepsNoWrites: whatever a ReadTx's fn writes is never kept,
// whether fn then fails, succeeds or panics.
func testReadTxKeepsNoWrites(t *testing.T, s Store) {
	p, vm := seed(t, s)
	ctx := context.Background()
	boom := errors.New("boom")

	err := s.ReadTx(ctx, func(tx jit.Tx) error {
		tryWrites(t, ctx, tx, p, vm)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("ReadTx whose fn failed returned %v, want fn's error", err)
	}
	checkSeed(t, s, p, vm)
	if t.Failed() {
		t.FailNow()
	}

	// fn ignores what its writes returned and succeeds: ReadTx may fail or
	// not, but still keeps nothing.
	var errs []error
	err = s.ReadTx(ctx, func(tx jit.Tx) error {
		errs = tryWrites(t, ctx, tx, p, vm)
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		if !errors.Is(errs[0], store.ErrReadOnly) {
			t.Logf("the first write refused in ReadTx (%v) does not wrap store.ErrReadOnly", errs[0])
		}
	}
	t.Logf("ReadTx with ignored writes returned %v", err)
	checkSeed(t, s, p, vm)
	if t.Failed() {
		t.FailNow()
	}

	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the panic to propagate", r)
			}
		}()
		_ = s.ReadTx(ctx, func(tx jit.Tx) error {
			tryWrites(t, ctx, tx, p, vm)
			panic("boom")
		})
	}()
	checkSeed(t, s, p, vm)
	// The store still reads and writes.
	readTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		checkSeedIn(t, ctx, tx, p, vm)
		return nil
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error { return tx.PutObject(ctx, "counter", "after", 1) })
}

// testObjectReadTxKeepsNoWrites: ObjectReadTx likewise.
func testObjectReadTxKeepsNoWrites(t *testing.T, s Store) {
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		if err := o.PutObject(ctx, "k", "a", doc{N: 1}); err != nil {
			return err
		}
		return o.PutObject(ctx, "k", "d", doc{N: 4})
	})
	ctx := context.Background()
	write := func(o store.Objects) {
		_ = o.PutObject(ctx, "k", "a", doc{N: 2})
		_ = o.PutObject(ctx, "k", "b", doc{N: 2})
		_ = o.DeleteObject(ctx, "k", "d")
	}
	check := func(when string) {
		t.Helper()
		objTx(t, s, func(ctx context.Context, o store.Objects) error {
			var keys []string
			if err := o.ListObjects(ctx, "k", func(key string, body []byte) error {
				keys = append(keys, key+"="+string(body))
				return nil
			}); err != nil {
				return err
			}
			var a, d doc
			if err := o.GetObject(ctx, "k", "a", &a); err != nil || a.N != 1 {
				t.Errorf("%s: k/a = %+v, %v; want n 1", when, a, err)
			}
			if err := o.GetObject(ctx, "k", "d", &d); err != nil || d.N != 4 {
				t.Errorf("%s: k/d = %+v, %v; want n 4", when, d, err)
			}
			if len(keys) != 2 {
				t.Errorf("%s: objects of kind k = %q, want a and d only", when, keys)
			}
			return nil
		})
	}
	boom := errors.New("boom")
	if err := s.ObjectReadTx(ctx, func(o store.Objects) error { write(o); return boom }); !errors.Is(err, boom) {
		t.Errorf("ObjectReadTx whose fn failed returned %v, want fn's error", err)
	}
	check("after ObjectReadTx failed")
	err := s.ObjectReadTx(ctx, func(o store.Objects) error { write(o); return nil })
	t.Logf("ObjectReadTx with ignored writes returned %v", err)
	check("after ObjectReadTx succeeded")
}

func testReadTxCancelledContext(t *testing.T, s Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.ReadTx(ctx, func(jit.Tx) error { return nil }); err == nil {
		t.Error("ReadTx with a cancelled context succeeded")
	}
	if err := s.ObjectReadTx(ctx, func(store.Objects) error { return nil }); err == nil {
		t.Error("ObjectReadTx with a cancelled context succeeded")
	}
}

// testReadTxBesideInTx: read-only transactions started while a writing
// transaction is in progress (holding its writes, uncommitted) all finish,
// without deadlock, and none sees the uncommitted write. A backend may run
// them beside the writer or queue them behind it: the writer holds on
// until they are done or for a grace period, whichever comes first.
func testReadTxBesideInTx(t *testing.T, s Store) {
	const readers = 8
	const grace = 300 * time.Millisecond
	objTx(t, s, func(ctx context.Context, o store.Objects) error { return o.PutObject(ctx, "counter", "c", 1) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	started := make(chan struct{})
	var startOnce sync.Once
	readsDone := make(chan struct{})
	var released atomic.Bool
	writeErr := make(chan error, 1)
	go func() {
		writeErr <- s.InTx(ctx, func(tx jit.Tx) error {
			if err := tx.PutObject(ctx, "counter", "c", 2); err != nil {
				return err
			}
			startOnce.Do(func() { close(started) })
			select {
			case <-readsDone:
			case <-time.After(grace):
			case <-ctx.Done():
			}
			released.Store(true)
			return nil
		})
	}()
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the writing transaction did not start within 5s")
	}

	type result struct {
		n      int
		before bool // finished while the writer still held its transaction open
		err    error
	}
	results := make(chan result, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := ReadCounter(ctx, s, i%2 == 1)
			results <- result{n: n, before: !released.Load(), err: err}
		}()
	}
	all := make(chan struct{})
	go func() {
		wg.Wait()
		close(readsDone)
		close(all)
	}()
	select {
	case <-all:
	case <-ctx.Done():
		t.Fatalf("%d read-only transactions started beside an InTx in progress did not all finish within 5s (deadlock?)", readers)
	}
	var werr error
	select {
	case werr = <-writeErr:
	case <-ctx.Done():
		t.Fatal("the writing transaction did not finish within 5s of the reads (deadlock?)")
	}
	if werr != nil {
		t.Fatalf("InTx beside read-only transactions: %v", werr)
	}
	close(results)
	beside := 0
	for r := range results {
		switch {
		case r.err != nil:
			t.Errorf("read-only transaction beside an InTx: %v", r.err)
		case r.before && r.n != 1:
			t.Errorf("a read-only transaction that ended before the InTx committed saw counter c = %d, want 1 (an uncommitted write)", r.n)
		case r.n != 1 && r.n != 2:
			t.Errorf("read-only transaction saw counter c = %d, want 1 or 2", r.n)
		}
		if r.before {
			beside++
		}
	}
	t.Logf("%d of %d read-only transactions finished while the InTx was open", beside, readers)
	objReadTx(t, s, func(ctx context.Context, o store.Objects) error {
		var n int
		if err := o.GetObject(ctx, "counter", "c", &n); err != nil || n != 2 {
			t.Errorf("after the InTx committed: counter c = %d, %v; want 2", n, err)
		}
		return nil
	})
}
