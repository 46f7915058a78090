package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditkey"
)

// TestAuditExportPagesAndVerifiesWithKey: export follows nextLink across
// pages (1100 records at 1000 a page) in log order; --limit keeps
// the newest; verify --public-key checks the signed checkpoints; audit
// checkpoint prints the latest.
func TestAuditExportPagesAndVerifiesWithKey(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	for i := range 1100 {
		if err := srv.Access.Record(ctx, audit.Record{Principal: fmt.Sprintf("p%d", i), Operation: "test", Result: audit.Denied}); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSpace(ok(t, srv.URL, "audit", "export")), "\n")
	if len(lines) < 1100 {
		t.Fatalf("export: %d lines, want every record (at least 1100)", len(lines))
	}
	for i, l := range lines {
		var r audit.Record
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Seq != int64(i+1) {
			t.Fatalf("line %d: seq %d, %v", i+1, r.Seq, err)
		}
	}
	newest := strings.Split(strings.TrimSpace(ok(t, srv.URL, "audit", "export", "--limit", "3")), "\n")
	if len(newest) != 3 || !strings.Contains(newest[2], `"principal":"p1099"`) {
		t.Fatalf("export --limit 3:\n%s", strings.Join(newest, "\n"))
	}

	// The server signs the head as soon as there is none, then every
	// 1000 records or minute.
	var cp audit.Checkpoint
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := cli(t, srv.URL, "-o", "json", "audit", "checkpoint")
		if r.code == 0 {
			cp = decodeJSON[audit.Checkpoint](t, r.stdout)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint: %+v", r)
		}
	}
	if cp.Seq < 1 || len(cp.Signature) == 0 {
		t.Fatalf("checkpoint %+v", cp)
	}
	out := ok(t, srv.URL, "audit", "verify", "--public-key", srv.AuditKeyFile+".pub")
	if !strings.Contains(out, "audit log intact") || !strings.Contains(out, "signed checkpoints verified") {
		t.Fatalf("verify --public-key:\n%s", out)
	}
	// Another key: the checkpoints do not verify, exit 1.
	other := t.TempDir() + "/other.key"
	if _, _, err := auditkey.LoadOrCreate(other); err != nil {
		t.Fatal(err)
	}
	if r := cli(t, srv.URL, "audit", "verify", "--public-key", other+".pub"); r.code != 1 || !strings.Contains(r.stderr, "was signed by key") {
		t.Fatalf("verify with another key: %+v", r)
	}
}
