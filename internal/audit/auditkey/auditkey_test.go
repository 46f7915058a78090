package auditkey

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
)

func TestKeyFiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db.audit-key")
	key, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %04o, want 0600", st.Mode().Perm())
	}
	again, created, err := LoadOrCreate(path)
	if err != nil || created || !again.Equal(key) {
		t.Fatalf("reload: %v %v", created, err)
	}
	cp := audit.SignCheckpoint(key, 7, "abc", time.Now())
	for _, f := range []string{path + ".pub", path} {
		pub, err := ReadPublic(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := cp.VerifySignature(pub); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	forged := cp
	forged.Hash = "abd"
	if pub, _ := ReadPublic(path + ".pub"); forged.VerifySignature(pub) == nil {
		t.Error("a checkpoint with another hash verifies")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a key others can read: %v, want refused", err)
	}
}

// Replicas sharing a directory start at once: one creates the key, every
// one loads the same key.
func TestConcurrentCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.audit-key")
	keys := make(chan string, 8)
	for range 8 {
		go func() {
			k, _, err := LoadOrCreate(path)
			if err != nil {
				keys <- "error: " + err.Error()
				return
			}
			keys <- string(k)
		}()
	}
	first := <-keys
	if strings.HasPrefix(first, "error") {
		t.Fatal(first)
	}
	for range 7 {
		if k := <-keys; k != first || strings.HasPrefix(k, "error") {
			t.Fatalf("replicas got different keys or an error: %q", k)
		}
	}
}
