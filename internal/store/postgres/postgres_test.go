package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/pgtest"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openTemp(t) })
}

// Two stores on one database are two replicas: the suite's concurrency
// tests again, with the goroutines split over both.
func TestConformanceTwoReplicas(t *testing.T) {
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
	const n = 200
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
			errs <- s.ObjectTx(ctx, func(o store.Objects) error {
				var c int
				if err := o.GetObject(ctx, "counter", "c", &c); err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				return o.PutObject(ctx, "counter", "c", c+1)
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
	var c int
	if err := a.ObjectTx(ctx, func(o store.Objects) error { return o.GetObject(ctx, "counter", "c", &c) }); err != nil {
		t.Fatal(err)
	}
	if c != n {
		t.Errorf("counter = %d after %d increments over two replicas", c, n)
	}
	t.Logf("retries: %d + %d", a.Retries(), b.Retries())
}

// TestMigrationsOnce: replicas opening a fresh database at once apply the
// migrations once, and the version is recorded.
func TestMigrationsOnce(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, dsn)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n, v int
	if err := s.pool.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &v); err != nil {
		t.Fatal(err)
	}
	if n != latestVersion(t) || v != latestVersion(t) {
		t.Errorf("schema_migrations: %d rows, version %d; want %d", n, v, latestVersion(t))
	}
	// A newer schema is refused.
	if _, err := s.pool.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES (999, 'future')`); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dsn); !errors.Is(err, ErrNewerSchema) {
		t.Errorf("Open on a newer schema: %v, want ErrNewerSchema", err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	// Port 1 on loopback: nothing listens, the connection is refused.
	_, err := Open(ctx, "postgres://drawbridge:secret@127.0.0.1:1/drawbridge?sslmode=disable&connect_timeout=2")
	if err == nil {
		t.Fatal("Open on an unreachable database succeeded")
	}
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error %q should wrap ErrUnavailable and name the host", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q shows the password", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Open took %v to fail", d)
	}
	if _, err := Open(ctx, "postgres://[bad"); err == nil {
		t.Error("Open with a malformed DSN succeeded")
	}
}

func TestIsDSN(t *testing.T) {
	for s, want := range map[string]bool{
		"postgres://h/db": true, "postgresql://u@h:5/db": true, "POSTGRES://h": true,
		"drawbridge.db": false, "/var/lib/x.db": false, ":memory:": false, "postgres.db": false,
	} {
		if IsDSN(s) != want {
			t.Errorf("IsDSN(%q) = %v", s, !want)
		}
	}
}

// TestReadTxBesideWriter: read-only transactions do not queue behind a
// writing transaction that holds VM locks, the audit head's lock and an
// uncommitted write to the row they read; they finish while it is open and
// see the committed value.
func TestReadTxBesideWriter(t *testing.T) {
	s := openTemp(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.ObjectTx(ctx, func(o store.Objects) error { return o.PutObject(ctx, "counter", "c", 1) }); err != nil {
		t.Fatal(err)
	}
	holding := make(chan struct{})
	release := make(chan struct{})
	writeErr := make(chan error, 1)
	go func() {
		var once sync.Once
		writeErr <- s.InTx(ctx, func(tx jit.Tx) error {
			if err := tx.PutObject(ctx, "counter", "c", 2); err != nil {
				return err
			}
			once.Do(func() { close(holding) })
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		})
	}()
	select {
	case <-holding:
	case err := <-writeErr:
		t.Fatalf("writer: %v", err)
	}
	const readers = 8
	errs := make(chan error, readers)
	for i := range readers {
		go func() {
			n, err := storetest.ReadCounter(ctx, s, i%2 == 1)
			if err == nil && n != 1 {
				err = fmt.Errorf("read counter c = %d beside an uncommitted write, want 1", n)
			}
			errs <- err
		}()
	}
	timeout := time.After(3 * time.Second)
	for range readers {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-timeout:
			close(release)
			t.Fatal("read-only transactions did not finish within 3s while a writer held its transaction open: they queue behind it")
		}
	}
	close(release)
	if err := <-writeErr; err != nil {
		t.Fatalf("writer: %v", err)
	}
	if r := s.Retries(); r != 0 {
		t.Errorf("%d retries; read-only transactions should make no writer retry", r)
	}
}

// TestReadTxRefusesWrites: a write in ReadTx or ObjectReadTx fails with an
// error wrapping store.ErrReadOnly (also when fn ignores it and returns
// nil), and nothing is stored.
func TestReadTxRefusesWrites(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	var werr error
	err := s.ReadTx(ctx, func(tx jit.Tx) error {
		werr = tx.PutObject(ctx, "k", "a", 1)
		return werr
	})
	if !errors.Is(werr, store.ErrReadOnly) || !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("write in ReadTx: %v; ReadTx: %v; want both to wrap store.ErrReadOnly", werr, err)
	}
	err = s.ObjectReadTx(ctx, func(o store.Objects) error {
		_ = o.DeleteObject(ctx, "k", "b")
		return nil
	})
	if !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("ObjectReadTx whose fn ignored a refused write returned %v, want store.ErrReadOnly", err)
	}
	var n int
	err = s.ObjectTx(ctx, func(o store.Objects) error { return o.GetObject(ctx, "k", "a", &n) })
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("object written in ReadTx: %d, %v; want not found", n, err)
	}
}

// TestReadTxBrokenConnectionRetried: a read-only transaction whose
// connection breaks runs again on a new one.
func TestReadTxBrokenConnectionRetried(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	if err := s.ObjectTx(ctx, func(o store.Objects) error { return o.PutObject(ctx, "counter", "c", 7) }); err != nil {
		t.Fatal(err)
	}
	attempts := 0
	var n int
	err := s.ReadTx(ctx, func(jt jit.Tx) error {
		attempts++
		if attempts == 1 {
			jt.(*tx).conn.Conn().PgConn().Conn().Close()
		}
		return jt.GetObject(ctx, "counter", "c", &n)
	})
	if err != nil || attempts != 2 || n != 7 {
		t.Fatalf("ReadTx: %v after %d attempts, read %d; want 7 after 2 attempts", err, attempts, n)
	}
}

// TestInTxStatementErrorIgnoredByFn: when fn ignores a failed statement
// and returns nil, InTx reports the failure instead of success: the
// transaction was aborted and nothing it wrote is stored.
func TestInTxStatementErrorIgnoredByFn(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	err := s.InTx(ctx, func(jt jit.Tx) error {
		if err := jt.PutObject(ctx, "k", "a", 1); err != nil {
			return err
		}
		_, _ = jt.(*tx).exec(ctx, "divide", `SELECT 1/0`)
		return nil
	})
	if err == nil {
		t.Fatal("InTx returned nil after a statement failed")
	}
	var n int
	if err := s.ObjectTx(ctx, func(o store.Objects) error { return o.GetObject(ctx, "k", "a", &n) }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("object of the aborted transaction: %d, %v; want not found", n, err)
	}
}

// latestVersion is the schema version this code creates and expects.
func latestVersion(t *testing.T) int {
	t.Helper()
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	return ms[len(ms)-1].Version
}
