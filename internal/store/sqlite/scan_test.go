package sqlite

import (
	"context"
	"testing"

	"github.com/drawbridge/drawbridge/internal/store"
)

// mmapSize reads the mmap_size of the connection under a read transaction.
func mmapSize(t *testing.T, read func(context.Context, func(store.Objects) error) error) int64 {
	t.Helper()
	var n int64
	err := read(context.Background(), func(o store.Objects) error {
		return o.(*tx).tx.QueryRowContext(context.Background(), "PRAGMA mmap_size").Scan(&n)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestScanPoolDoesNotMap: long scans (audit export, verify) run on
// connections that do not memory-map the file, while request reads keep
// their map; and a scan sees what was committed.
func TestScanPoolDoesNotMap(t *testing.T) {
	s := openTemp(t)
	if got := mmapSize(t, s.ObjectReadTx); got != 268435456 {
		t.Fatalf("read pool mmap_size = %d, want 268435456", got)
	}
	if got := mmapSize(t, s.ScanReadTx); got != 0 {
		t.Fatalf("scan pool mmap_size = %d, want 0", got)
	}
	ctx := context.Background()
	if err := s.ObjectTx(ctx, func(o store.Objects) error { return o.PutObject(ctx, "k", "a", map[string]int{"n": 1}) }); err != nil {
		t.Fatal(err)
	}
	var got map[string]int
	if err := store.ScanReadTx(ctx, s, func(o store.Objects) error { return o.GetObject(ctx, "k", "a", &got) }); err != nil {
		t.Fatal(err)
	}
	if got["n"] != 1 {
		t.Fatalf("scan read %v, want n=1", got)
	}
	if err := s.ScanReadTx(ctx, func(o store.Objects) error { return o.PutObject(ctx, "k", "b", 1) }); err == nil {
		t.Fatal("a write in a scan transaction succeeded")
	}
}
