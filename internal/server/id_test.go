package server

import (
	"encoding/hex"
	"testing"
	"time"
)

// IDs start with the creation time so that inserts append to the B-tree,
// and stay unique and unguessable (80 random bits) within a millisecond.
func TestNewIDOrderedByTime(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	a, b := newIDAt(t0), newIDAt(t0.Add(time.Millisecond))
	if len(a) != 32 || len(b) != 32 {
		t.Fatalf("lengths %d %d, want 32 hex digits", len(a), len(b))
	}
	if _, err := hex.DecodeString(a); err != nil {
		t.Fatalf("%q is not hex: %v", a, err)
	}
	if !(a < b) {
		t.Fatalf("%s (t0) does not sort before %s (t0+1ms)", a, b)
	}
	seen := map[string]bool{}
	for range 10000 {
		id := newIDAt(t0)
		if seen[id] {
			t.Fatalf("duplicate ID %s within one millisecond", id)
		}
		seen[id] = true
		if id[:12] != a[:12] {
			t.Fatalf("%s and %s share a millisecond but not its prefix", id, a)
		}
	}
}
