package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/pgtest"
	"github.com/drawbridge/drawbridge/internal/store"
)

// TestDueGrantsClaimedOnce: two replicas expiring the same due grants at
// the same moment each take a disjoint part, and every grant is ended by
// exactly one of them.
func TestDueGrantsClaimedOnce(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	stores := make([]*Store, 3)
	for i := range stores {
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	vm := "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"
	pid := jit.PolicyID("s1", "rg1", "westeurope", "p")
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	const grants = 300
	err := stores[0].InTx(ctx, func(tx jit.Tx) error {
		if err := tx.PutPolicy(ctx, jit.Policy{ID: pid, Name: "p", Location: "westeurope", VirtualMachines: []jit.VMPolicy{{ID: vm}}}); err != nil {
			return err
		}
		for i := range grants {
			id := fmt.Sprintf("g%03d", i)
			if err := tx.InsertRequest(ctx, jit.Request{ID: "r" + id, PolicyID: pid, StartTime: now.Add(-time.Hour), Grants: []jit.Grant{
				{ID: id, VMID: vm, Port: 1000 + i, StartTime: now.Add(-time.Hour), EndTime: now.Add(-time.Duration(i) * time.Second), Status: jit.StatusInitiated},
			}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	endedBy := map[string][]int{}
	var wg sync.WaitGroup
	for w := range 6 {
		s := stores[w%len(stores)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var mine []string
				err := s.InTx(ctx, func(tx jit.Tx) error {
					mine = nil
					due, err := tx.DueGrants(ctx, now, 7)
					if err != nil {
						return err
					}
					for _, g := range due {
						ended, err := g.End(jit.ReasonExpired, now)
						if err != nil {
							return err
						}
						if err := tx.UpdateGrant(ctx, ended); err != nil {
							return err
						}
						mine = append(mine, g.ID)
					}
					// Hold the claim a moment so others must skip past it.
					time.Sleep(2 * time.Millisecond)
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				if len(mine) == 0 {
					return
				}
				mu.Lock()
				for _, id := range mine {
					endedBy[id] = append(endedBy[id], w)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(endedBy) != grants {
		t.Errorf("%d grants ended, want %d", len(endedBy), grants)
	}
	workers := map[int]bool{}
	for id, ws := range endedBy {
		if len(ws) != 1 {
			t.Errorf("grant %s ended by %d transactions (%v)", id, len(ws), ws)
		}
		workers[ws[0]] = true
	}
	if len(workers) < 2 {
		t.Errorf("only %d worker(s) expired anything; claims did not spread", len(workers))
	}
}

// TestClaimReleasedWhenReplicaDies: a replica that claimed a due grant
// and then lost its connection (as when the process is killed) does not
// block it: while the claim is held other replicas skip the grant, and once
// the connection drops another replica takes it at once.
func TestClaimReleasedWhenReplicaDies(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	b, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	vm := "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"
	pid := jit.PolicyID("s1", "rg1", "westeurope", "p")
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := b.InTx(ctx, func(tx jit.Tx) error {
		if err := tx.PutPolicy(ctx, jit.Policy{ID: pid, Name: "p", VirtualMachines: []jit.VMPolicy{{ID: vm}}}); err != nil {
			return err
		}
		return tx.InsertRequest(ctx, jit.Request{ID: "r1", PolicyID: pid, StartTime: now.Add(-time.Hour), Grants: []jit.Grant{
			{ID: "g1", VMID: vm, Port: 22, StartTime: now.Add(-time.Hour), EndTime: now.Add(-time.Minute), Status: jit.StatusInitiated}}})
	}); err != nil {
		t.Fatal(err)
	}
	due := func() int {
		var got []jit.Grant
		if err := b.InTx(ctx, func(tx jit.Tx) error {
			var err error
			got, err = tx.DueGrants(ctx, now, 10)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	// The dying replica: the same claim DueGrants makes, on its own connection.
	dying, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer dying.Close(ctx)
	if _, err := dying.Exec(ctx, "BEGIN ISOLATION LEVEL SERIALIZABLE"); err != nil {
		t.Fatal(err)
	}
	rows, err := dying.Query(ctx, qDueGrants, string(jit.StatusInitiated), now.UnixNano(), 10)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	rows.Close()
	if n != 1 {
		t.Fatalf("dying replica claimed %d grants, want 1", n)
	}
	if got := due(); got != 0 {
		t.Fatalf("another replica got %d grants while the claim was held, want 0", got)
	}
	dying.PgConn().Conn().Close() // the process dies: its socket closes
	start := time.Now()
	for due() != 1 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the dead replica's claim was never released")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("claim released %v after the connection dropped", time.Since(start))
}

// TestBrokenConnectionRetried: a transaction whose connection breaks before
// COMMIT runs again on a new connection, and what it wrote is there once.
func TestBrokenConnectionRetried(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	attempts := 0
	err := s.InTx(ctx, func(jt jit.Tx) error {
		attempts++
		var n int
		if err := jt.GetObject(ctx, "counter", "c", &n); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if attempts == 1 {
			jt.(*tx).conn.Conn().PgConn().Conn().Close()
		}
		return jt.PutObject(ctx, "counter", "c", n+1)
	})
	if err != nil || attempts != 2 {
		t.Fatalf("InTx: %v after %d attempts, want success after 2", err, attempts)
	}
	var n int
	if err := s.ObjectTx(ctx, func(o store.Objects) error { return o.GetObject(ctx, "counter", "c", &n) }); err != nil || n != 1 {
		t.Errorf("counter = %d, %v; want 1", n, err)
	}
}

// TestWritersSerialiseAcrossReplicas: writing transactions on different
// replicas never overlap, and each sees the previous one's commit (the
// writer lock is taken before the snapshot).
func TestWritersSerialiseAcrossReplicas(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	a, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var inside, overlaps atomic.Int32
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.InTx(ctx, func(tx jit.Tx) error {
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				defer inside.Add(-1)
				var c int
				if err := tx.GetObject(ctx, "counter", "c", &c); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				time.Sleep(time.Millisecond)
				return tx.PutObject(ctx, "counter", "c", c+1)
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if overlaps.Load() != 0 {
		t.Errorf("%d transactions ran while another held the same VM lock", overlaps.Load())
	}
	var c int
	if err := a.ObjectTx(ctx, func(o store.Objects) error { return o.GetObject(ctx, "counter", "c", &c) }); err != nil {
		t.Fatal(err)
	}
	if c != n {
		t.Errorf("counter = %d, want %d", c, n)
	}
	// Taken first, the lock comes before the snapshot: no transaction had
	// to be retried to see the previous one's write.
	if r := a.Retries() + b.Retries(); r != 0 {
		t.Errorf("%d retries; locking first should make a stale snapshot impossible", r)
	}
}
