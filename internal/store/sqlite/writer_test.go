package sqlite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// ReadTx runs on the read pool: it sees committed data, cannot write, and
// does not wait for a write transaction in progress.
func TestReadTxRunsBesideTheWriter(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	if err := s.InTx(ctx, func(tx jit.Tx) error { return tx.PutObject(ctx, "k", "a", 1) }); err != nil {
		t.Fatal(err)
	}
	err := s.ReadTx(ctx, func(tx jit.Tx) error { return tx.PutObject(ctx, "k", "a", 5) })
	if err == nil {
		t.Fatal("a write inside ReadTx succeeded")
	}
	if v, err := getInt(t, s, "k", "a"); err != nil || v != 1 {
		t.Fatalf("a = %d, %v; want 1", v, err)
	}
	inWriter, release := make(chan struct{}), make(chan struct{})
	writeDone := make(chan error, 1)
	go func() {
		writeDone <- s.InTx(ctx, func(tx jit.Tx) error {
			if err := tx.PutObject(ctx, "k", "a", 2); err != nil {
				return err
			}
			close(inWriter)
			<-release
			return nil
		})
	}()
	<-inWriter
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var v int
	err = s.ObjectReadTx(rctx, func(o store.Objects) error { return o.GetObject(rctx, "k", "a", &v) })
	close(release)
	if err != nil {
		t.Fatalf("ObjectReadTx while a write is open: %v", err)
	}
	if v != 1 {
		t.Fatalf("read %d during the write, want the committed 1", v)
	}
	if err := <-writeDone; err != nil {
		t.Fatal(err)
	}
	if err := s.ObjectReadTx(ctx, func(o store.Objects) error { return o.GetObject(ctx, "k", "a", &v) }); err != nil || v != 2 {
		t.Fatalf("after commit read %d, %v; want 2", v, err)
	}
}

// Closing the store while transactions queue for the writer answers every
// one of them: committed, or refused because the store closed; none waits
// forever.
func TestCloseAnswersQueuedTransactions(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "drawbridge.db"))
	if err != nil {
		t.Fatal(err)
	}
	const callers = 200
	results := make(chan error, callers)
	for i := range callers {
		go func() {
			results <- s.InTx(ctx, func(tx jit.Tx) error { return tx.PutObject(ctx, "k", fmt.Sprint(i), i) })
		}()
	}
	time.Sleep(5 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for range callers {
		select {
		case err := <-results:
			if err != nil && !errors.Is(err, errStoreClosed) {
				t.Errorf("InTx during Close: %v", err)
			}
		case <-deadline:
			t.Fatal("an InTx call was still waiting 10 s after Close")
		}
	}
}

// Under steady writes with readers always active, the writer rewinds the
// WAL once it passes the threshold: SQLite only rewinds it by itself when a
// write starts with every frame copied back and no reader on it, which a
// server under steady load can go without for good (the request benchmark's
// WAL reached 420 MB after 5,000 requests).
func TestWALRewoundUnderSteadyLoad(t *testing.T) {
	ctx := context.Background()
	s, path := openTempPath(t)
	s.walRestartAt = 512 // 2 MiB instead of 64 MiB
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range readConns {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = s.ObjectReadTx(ctx, func(o store.Objects) error {
					var v string
					for k := range 20 {
						_ = o.GetObject(ctx, "k", fmt.Sprint(k), &v)
					}
					return nil
				})
			}
		})
	}
	body := strings.Repeat("x", 6000)            // two pages per row
	const writes = 6000                          // about 70 MiB of WAL frames in all
	deadline := time.Now().Add(10 * time.Second) // bounds it under -race
	// Under load a rewind may miss its 10 ms window many times in a row:
	// write on (within the deadline) until one lands.
	for i := 0; (i < writes || s.walRestarts.Load() == 0) && time.Now().Before(deadline); i++ {
		if err := s.InTx(ctx, func(tx jit.Tx) error { return tx.PutObject(ctx, "k", fmt.Sprint(i%500), body) }); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	readers.Wait()
	st, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if s.walRestarts.Load() == 0 {
		t.Fatalf("the WAL was never rewound (%d bytes)", st.Size())
	}
	if st.Size() > 40<<20 {
		t.Fatalf("WAL is %d MiB after %d rewinds; it should stay near the rewind point", st.Size()>>20, s.walRestarts.Load())
	}
	t.Logf("WAL %d KiB after %d rewinds", st.Size()>>10, s.walRestarts.Load())
}

// A long read (its snapshot pins the WAL) does not hold up writes while
// the WAL is due for a rewind: the rewind waits only briefly, gives up, and
// succeeds once the reader is done.
func TestWALRewindDoesNotWaitForLongReads(t *testing.T) {
	ctx := context.Background()
	s, path := openTempPath(t)
	s.walRestartAt = 256
	if err := s.InTx(ctx, func(tx jit.Tx) error { return tx.PutObject(ctx, "k", "a", 1) }); err != nil {
		t.Fatal(err)
	}
	inRead, release := make(chan struct{}), make(chan struct{})
	readDone := make(chan error, 1)
	go func() {
		readDone <- s.ObjectReadTx(ctx, func(o store.Objects) error {
			var v int
			if err := o.GetObject(ctx, "k", "a", &v); err != nil {
				return err
			}
			close(inRead)
			<-release
			return nil
		})
	}()
	<-inRead
	body := strings.Repeat("x", 6000)
	var slowest time.Duration
	start := time.Now()
	for i := 0; time.Since(start) < 2*time.Second; i++ {
		t0 := time.Now()
		if err := s.InTx(ctx, func(tx jit.Tx) error { return tx.PutObject(ctx, "k", fmt.Sprint(i%100), body) }); err != nil {
			t.Fatal(err)
		}
		slowest = max(slowest, time.Since(t0))
	}
	if st, err := os.Stat(path + "-wal"); err != nil || st.Size() < s.walRestartAt*4096 {
		t.Fatalf("the WAL never reached the rewind point: %v %v", st, err)
	}
	if slowest > time.Second {
		t.Errorf("a write took %v while a reader pinned the WAL", slowest)
	}
	close(release)
	if err := <-readDone; err != nil {
		t.Fatal(err)
	}
	rewinds := s.walRestarts.Load()
	deadline := time.Now().Add(10 * time.Second)
	for s.walRestarts.Load() == rewinds {
		if time.Now().After(deadline) {
			t.Fatal("the WAL was not rewound after the reader finished")
		}
		if err := s.InTx(ctx, func(tx jit.Tx) error { return tx.PutObject(ctx, "k", "b", body) }); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("slowest write with the reader open: %v", slowest)
}

// runBatchOf runs fns as one group commit, straight through runBatch (the
// writer is idle meanwhile: nothing else calls InTx), and returns each
// one's outcome.
func runBatchOf(t *testing.T, s *Store, fns ...func(txn) error) []txResult {
	t.Helper()
	batch := make([]*txJob, len(fns))
	for i, fn := range fns {
		batch[i] = &txJob{ctx: context.Background(), fn: fn, done: make(chan txResult, 1)}
	}
	s.runBatch(batch)
	out := make([]txResult, len(batch))
	for i, j := range batch {
		out[i] = <-j.done
	}
	return out
}

// A group commit keeps what its successful transactions wrote and nothing
// of a failed one's, whether the failure came before any write (nothing to
// undo, nobody runs again), after writes (the batch is rolled back and the
// others run again, once each, in savepoints), or as a panic after writes.
func TestGroupCommitUndoesOnlyFailedTransactions(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	runs := map[string]int{}
	put := func(key string, v int, fail error, panicking bool) func(txn) error {
		return func(t txn) error {
			runs[key]++
			if err := t.PutObject(ctx, "k", key, v); err != nil {
				return err
			}
			if panicking {
				panic("boom " + key)
			}
			return fail
		}
	}
	refuse := func(key string, err error) func(txn) error {
		return func(t txn) error {
			runs[key]++
			var v int
			if gerr := t.GetObject(ctx, "k", "a", &v); gerr != nil && !errors.Is(gerr, store.ErrNotFound) {
				return gerr
			}
			return err
		}
	}
	check := func(step string, want map[string]int) {
		t.Helper()
		for key, v := range want {
			got, err := getInt(t, s, "k", key)
			if v < 0 {
				if !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s: %s = %d, %v; want absent", step, key, got, err)
				}
				continue
			}
			if err != nil || got != v {
				t.Errorf("%s: %s = %d, %v; want %d", step, key, got, err, v)
			}
		}
	}
	errD, errB := errors.New("refused before writing"), errors.New("failed after writing")

	// All succeed, one fails before writing: one pass, nobody runs twice.
	res := runBatchOf(t, s, put("a", 1, nil, false), refuse("d", errD), put("c", 3, nil, false))
	if res[0].err != nil || !errors.Is(res[1].err, errD) || res[2].err != nil {
		t.Fatalf("first batch: %+v", res)
	}
	if runs["a"] != 1 || runs["d"] != 1 || runs["c"] != 1 {
		t.Fatalf("first batch runs: %v; want one each", runs)
	}
	check("first batch", map[string]int{"a": 1, "c": 3})

	// One fails after writing: its write is gone, the others' are kept.
	clear(runs)
	res = runBatchOf(t, s, put("a", 10, nil, false), refuse("d", errD), put("b", 20, errB, false), put("c", 30, nil, false))
	if res[0].err != nil || !errors.Is(res[1].err, errD) || !errors.Is(res[2].err, errB) || res[3].err != nil {
		t.Fatalf("second batch: %+v", res)
	}
	if runs["a"] != 2 || runs["d"] != 1 || runs["b"] != 1 || runs["c"] != 1 {
		t.Fatalf("second batch runs: %v; want a twice (run again after the rollback), the others once", runs)
	}
	check("second batch", map[string]int{"a": 10, "b": -1, "c": 30})

	// A panic after writing, and a failure after writing in the savepoint
	// pass that follows: each is undone alone.
	clear(runs)
	res = runBatchOf(t, s, put("a", 100, nil, false), put("e", 500, nil, true), put("b", 200, errB, false), put("c", 300, nil, false))
	if res[0].err != nil || res[1].panic == nil || !errors.Is(res[2].err, errB) || res[3].err != nil {
		t.Fatalf("third batch: %+v", res)
	}
	if runs["a"] != 2 || runs["e"] != 1 || runs["b"] != 1 || runs["c"] != 1 {
		t.Fatalf("third batch runs: %v", runs)
	}
	check("third batch", map[string]int{"a": 100, "b": -1, "c": 300, "e": -1})
}

// Many callers at once (so transactions share batches), some failing
// before writing, some after, some panicking: every counter ends at the
// number of transactions that reported success, as if they had run one at
// a time, and the writer's cache agrees with the file.
func TestGroupCommitUnderMixedFailures(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	const callers, each = 16, 60
	errRefused, errLate := errors.New("refused"), errors.New("failed after writing")
	var mu sync.Mutex
	succeeded := map[string]int{}
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			own := fmt.Sprintf("c%02d", c)
			for range each {
				fate := rng.IntN(10) // 0: refused before writing, 1: fails after, 2: panics after, else commits
				err := func() (err error) {
					defer func() {
						if p := recover(); p != nil {
							err = fmt.Errorf("panic: %v", p)
						}
					}()
					return s.InTx(ctx, func(tx jit.Tx) error {
						var total, mine int
						if err := tx.GetObject(ctx, "n", "total", &total); err != nil && !errors.Is(err, store.ErrNotFound) {
							return err
						}
						if fate == 0 {
							return errRefused
						}
						if err := tx.GetObject(ctx, "n", own, &mine); err != nil && !errors.Is(err, store.ErrNotFound) {
							return err
						}
						if err := tx.PutObject(ctx, "n", "total", total+1); err != nil {
							return err
						}
						if err := tx.PutObject(ctx, "n", own, mine+1); err != nil {
							return err
						}
						switch fate {
						case 1:
							return errLate
						case 2:
							panic("after writing")
						}
						return nil
					})
				}()
				if err == nil {
					mu.Lock()
					succeeded[own]++
					succeeded["total"]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if succeeded["total"] == 0 || succeeded["total"] == callers*each {
		t.Fatalf("%d of %d transactions succeeded; the test wants a mix", succeeded["total"], callers*each)
	}
	for key, want := range succeeded {
		// Through the writer (its cache) and through a read-only snapshot
		// of the file.
		if got, err := getInt(t, s, "n", key); err != nil || got != want {
			t.Errorf("%s = %d, %v through the writer; want %d", key, got, err, want)
		}
		var got int
		if err := s.ObjectReadTx(ctx, func(o store.Objects) error { return o.GetObject(ctx, "n", key, &got) }); err != nil || got != want {
			t.Errorf("%s = %d, %v in the file; want %d", key, got, err, want)
		}
	}
}
