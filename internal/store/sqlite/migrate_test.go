package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// A database written at schema version 1 (WITHOUT ROWID tables, audit
// records and head as objects) keeps every row through the later migrations, its
// foreign keys still hold and cascade, and its audit log still verifies.
func TestMigrationToRowidTablesKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	ms, err := migrations()
	if err != nil || len(ms) < 2 || ms[0].Version != 1 {
		t.Fatalf("migrations: %v %v", ms, err)
	}
	raw, err := sql.Open("sqlite", path+"?_pragma=foreign_keys(1)")
	if err != nil {
		t.Fatal(err)
	}
	vm := "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"
	p := jit.Policy{ID: jit.PolicyID("s1", "rg1", "westeurope", "p"), Name: "p", Location: "westeurope",
		VirtualMachines: []jit.VMPolicy{{ID: vm, Ports: []jit.PortPolicy{{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT1H"}}}}}
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	g := jit.Grant{ID: "g1", RequestID: "r1", PolicyID: p.ID, VMID: vm, Port: 22, StartTime: start, EndTime: start.Add(time.Hour), Status: jit.StatusInitiated}
	rec := audit.Chain(audit.Record{}, audit.Record{Time: start, Principal: "alice", Operation: "initiate", Result: audit.Succeeded})
	recBody, _ := json.Marshal(rec)
	headBody, _ := json.Marshal(auditstore.Head{Seq: rec.Seq, Hash: rec.Hash})
	pb, _ := json.Marshal(p)
	rb, _ := json.Marshal(jit.Request{ID: "r1", PolicyID: p.ID, StartTime: start})
	gb, _ := json.Marshal(g)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`, nil},
		{ms[0].SQL, nil},
		{`INSERT INTO schema_migrations VALUES (1, ?, ?)`, []any{ms[0].Name, start.Format(time.RFC3339Nano)}},
		{`INSERT INTO objects VALUES ('k', 'a', '1'), ('audit.head', 'head', ?), ('audit.record', ?, ?)`, []any{headBody, auditstore.Key(1), recBody}},
		{`INSERT INTO policies VALUES (lower(?), 'westeurope', ?)`, []any{p.ID, pb}},
		{`INSERT INTO policy_vms VALUES (lower(?), lower(?))`, []any{vm, p.ID}},
		{`INSERT INTO requests VALUES ('r1', lower(?), ?, ?)`, []any{p.ID, start.UnixNano(), rb}},
		{`INSERT INTO grants VALUES ('g1', 'r1', 0, lower(?), lower(?), 22, 'Initiated', ?, ?, ?)`, []any{p.ID, vm, start.UnixNano(), start.Add(time.Hour).UnixNano(), gb}},
	} {
		if _, err := raw.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	raw.Close()

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v int
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil || v != latestVersion(t) {
		t.Fatalf("schema version %d (%v), want %d", v, err, latestVersion(t))
	}
	err = s.InTx(ctx, func(tx jit.Tx) error {
		var n int
		if err := tx.GetObject(ctx, "k", "a", &n); err != nil || n != 1 {
			t.Errorf("object k/a = %d, %v", n, err)
		}
		if got, err := tx.PolicyForVM(ctx, vm); err != nil || got.ID != p.ID {
			t.Errorf("PolicyForVM = %q, %v", got.ID, err)
		}
		reqs, err := tx.ListRequests(ctx, p.ID, 0)
		if err != nil || len(reqs) != 1 || len(reqs[0].Grants) != 1 || reqs[0].Grants[0].ID != "g1" {
			t.Errorf("ListRequests = %+v, %v", reqs, err)
		}
		if active, err := tx.ListGrants(ctx, jit.GrantFilter{VMID: vm, ActiveOnly: true}); err != nil || len(active) != 1 {
			t.Errorf("active grants = %+v, %v", active, err)
		}
		// The VM's history, through the key_ids index of 0006.
		if all, err := tx.ListGrants(ctx, jit.GrantFilter{VMID: vm}); err != nil || len(all) != 1 || all[0].ID != "g1" {
			t.Errorf("grants of the VM = %+v, %v", all, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The audit record moved to its own table (0003) and still verifies.
	err = s.ObjectReadTx(ctx, func(o store.Objects) error {
		rep, err := auditstore.Verify(ctx, o)
		if err != nil || !rep.OK || rep.Records != 1 {
			t.Errorf("audit verify after migration: %+v, %v", rep, err)
		}
		for _, kind := range []string{auditstore.KindRecord, auditstore.KindHead} {
			err := o.ListObjects(ctx, kind, func(key string, _ []byte) error {
				t.Errorf("%s %s left among the objects", kind, key)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The head moved to its own table (0005).
	var headSeq int64
	var headHash string
	if err := s.db.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head`).Scan(&headSeq, &headHash); err != nil || headSeq != rec.Seq || headHash != rec.Hash {
		t.Errorf("audit_head = %d %q (%v), want %d %q", headSeq, headHash, err, rec.Seq, rec.Hash)
	}
	rows, err := s.db.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		t.Fatal(err)
	}
	if rows.Next() {
		t.Error("foreign_key_check reports violations after the migration")
	}
	rows.Close()
	for table, parent := range map[string]string{"grants": "requests", "policy_vms": "policies"} {
		var got string
		if err := s.db.QueryRowContext(ctx, `SELECT "table" FROM pragma_foreign_key_list(?)`, table).Scan(&got); err != nil || got != parent {
			t.Errorf("%s references %q (%v), want %q", table, got, err, parent)
		}
	}
	// The cascade still works: deleting the policy removes its VM index row.
	if err := s.InTx(ctx, func(tx jit.Tx) error { return tx.DeletePolicy(ctx, p.ID) }); err != nil {
		t.Fatal(err)
	}
	err = s.InTx(ctx, func(tx jit.Tx) error { _, err := tx.PolicyForVM(ctx, vm); return err })
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("PolicyForVM after DeletePolicy: %v, want not found", err)
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
