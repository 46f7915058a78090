package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

func getInt(t *testing.T, s *Store, kind, key string) (int, error) {
	t.Helper()
	var v int
	err := s.InTx(context.Background(), func(tx jit.Tx) error { return tx.GetObject(context.Background(), kind, key, &v) })
	return v, err
}

// The writer's row cache never shows what a rolled-back transaction wrote.
func TestCacheForgetsRolledBackWrites(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	if err := s.InTx(ctx, func(tx jit.Tx) error { return tx.PutObject(ctx, "k", "a", 1) }); err != nil {
		t.Fatal(err)
	}
	if v, err := getInt(t, s, "k", "a"); err != nil || v != 1 {
		t.Fatalf("a = %d, %v", v, err)
	}
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx jit.Tx) error {
		if err := tx.PutObject(ctx, "k", "a", 2); err != nil {
			return err
		}
		if err := tx.PutObject(ctx, "k", "new", 3); err != nil {
			return err
		}
		if err := tx.DeleteObject(ctx, "k", "a"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}
	if v, err := getInt(t, s, "k", "a"); err != nil || v != 1 {
		t.Fatalf("after rollback a = %d, %v; want 1", v, err)
	}
	if _, err := getInt(t, s, "k", "new"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after rollback new: %v, want not found", err)
	}
}

// Another process committing to the same file is seen at once, even for
// rows the writer has cached.
func TestCacheSeesOtherConnectionsCommits(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "drawbridge.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.InTx(ctx, func(tx jit.Tx) error { return tx.PutObject(ctx, "k", "a", 1) }); err != nil {
		t.Fatal(err)
	}
	if v, err := getInt(t, s, "k", "a"); err != nil || v != 1 {
		t.Fatalf("a = %d, %v", v, err)
	}
	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec(`UPDATE objects SET body = '7' WHERE kind = 'k' AND key = 'a'`); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(`INSERT INTO objects (kind, key, body) VALUES ('k', 'b', '8')`); err != nil {
		t.Fatal(err)
	}
	if v, err := getInt(t, s, "k", "a"); err != nil || v != 7 {
		t.Fatalf("after another connection's update a = %d, %v; want 7", v, err)
	}
	if v, err := getInt(t, s, "k", "b"); err != nil || v != 8 {
		t.Fatalf("b = %d, %v; want 8", v, err)
	}
}

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
