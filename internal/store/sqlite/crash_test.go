package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// crashChildEnv makes the test binary act as the crashing child process.
const crashChildEnv = "DRAWBRIDGE_SQLITE_CRASH_CHILD"

// TestMain lets TestCommitSurvivesKill re-run this binary as a child that
// commits and then dies by SIGKILL, without running the tests.
func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	os.Exit(m.Run())
}

func crashChild(path string) {
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := range 100 {
		if err := s.ObjectTx(ctx, func(o store.Objects) error { return o.PutObject(ctx, "k", fmt.Sprint(i), i) }); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	// Die with the last commits only in the WAL and no checkpoint or Close.
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// TestCommitSurvivesKill: with WAL and synchronous=NORMAL, every committed
// transaction survives the process being killed right after the commit.
func TestCommitSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drawbridge.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
	}
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	n := 0
	err = s.ObjectTx(ctx, func(o store.Objects) error {
		return o.ListObjects(ctx, "k", func(string, []byte) error { n++; return nil })
	})
	if err != nil || n != 100 {
		t.Fatalf("%d of 100 committed objects after kill -9 (%v)", n, err)
	}
}

// TestTwoStoresOneFile: two Stores on one file (as two processes would
// be) contend through SQLite's lock; BEGIN IMMEDIATE and busy_timeout make
// them wait rather than fail, and no increment is lost.
func TestTwoStoresOneFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "drawbridge.db")
	var stores [2]*Store
	for i := range stores {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	const goroutines, each = 10, 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*goroutines*each)
	for _, s := range stores {
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					errs <- s.InTx(ctx, func(tx jit.Tx) error {
						var n int
						if err := tx.GetObject(ctx, "counter", "c", &n); err != nil && !errors.Is(err, store.ErrNotFound) {
							return err
						}
						return tx.PutObject(ctx, "counter", "c", n+1)
					})
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("increment: %v", err)
		}
	}
	var n int
	if err := stores[0].ObjectTx(ctx, func(o store.Objects) error { return o.GetObject(ctx, "counter", "c", &n) }); err != nil {
		t.Fatal(err)
	}
	if n != 2*goroutines*each {
		t.Errorf("counter = %d, want %d", n, 2*goroutines*each)
	}
}
