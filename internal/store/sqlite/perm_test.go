package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/drawbridge/drawbridge/internal/store/sqlite"
)

// The database and its -wal and -shm files are 0600, whatever the umask,
// for a new database and for one created 0644 by an earlier version.
func TestDatabaseFilesAreOwnerOnly(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	check := func(db string) {
		t.Helper()
		for _, p := range []string{db, db + "-wal", db + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("%s: %v", filepath.Base(p), err)
			}
			if m := fi.Mode().Perm(); m != 0o600 {
				t.Errorf("%s: mode %o, want 600", filepath.Base(p), m)
			}
		}
	}
	fresh := filepath.Join(dir, "fresh.db")
	st, err := sqlite.Open(context.Background(), fresh)
	if err != nil {
		t.Fatal(err)
	}
	check(fresh) // the store writes its schema, so -wal and -shm exist
	st.Close()

	// A database left 0644 (with its WAL) by an earlier version is tightened.
	for _, p := range []string{fresh, fresh + "-wal", fresh + "-shm"} {
		if _, err := os.Stat(p); err == nil {
			os.Chmod(p, 0o644)
		}
	}
	st, err = sqlite.Open(context.Background(), fresh)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	check(fresh)
}
