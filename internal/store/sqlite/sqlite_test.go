package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/storetest"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, _ := openTempPath(t)
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return openTemp(t) })
}

// TestConformanceWithoutCaches: the plain SQL path alone (no row cache,
// no decode memo) passes the same suite, so the cache layer is an
// optimisation and nothing else.
func TestConformanceWithoutCaches(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		s, err := OpenWith(context.Background(), filepath.Join(t.TempDir(), "drawbridge.db"), Options{NoRowCache: true, NoDecodeMemo: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// TestSurvivesReopen: everything committed is there after Close and Open;
// what a failed transaction wrote is not.
func TestSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "drawbridge.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	vm := "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"
	p := jit.Policy{ID: jit.PolicyID("s1", "rg1", "westeurope", "p"), Name: "p", Location: "westeurope",
		VirtualMachines: []jit.VMPolicy{{ID: vm}}}
	end := time.Date(2030, 1, 1, 0, 0, 0, 1, time.UTC)
	err = s.InTx(ctx, func(tx jit.Tx) error {
		if err := tx.PutObject(ctx, inventory.KindVM, inventory.Key(vm), inventory.VM{ID: vm, Cloud: inventory.Azure}); err != nil {
			return err
		}
		if err := tx.PutPolicy(ctx, p); err != nil {
			return err
		}
		return tx.InsertRequest(ctx, jit.Request{ID: "r1", PolicyID: p.ID, StartTime: end.Add(-time.Hour), Grants: []jit.Grant{
			{ID: "g1", VMID: vm, Port: 22, StartTime: end.Add(-time.Hour), EndTime: end, Status: jit.StatusInitiated},
		}})
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.InTx(ctx, func(tx jit.Tx) error {
		if err := tx.PutObject(ctx, "k", "uncommitted", 1); err != nil {
			return err
		}
		return errors.New("fail")
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.InTx(ctx, func(tx jit.Tx) error {
		if _, err := inventory.GetVM(ctx, tx, vm); err != nil {
			t.Errorf("VM after reopen: %v", err)
		}
		if got, err := tx.PolicyForVM(ctx, vm); err != nil || got.ID != p.ID {
			t.Errorf("PolicyForVM after reopen = %q, %v", got.ID, err)
		}
		due, err := tx.DueGrants(ctx, end, 0)
		if err != nil || len(due) != 1 || !due[0].EndTime.Equal(end) {
			t.Errorf("DueGrants after reopen = %+v, %v", due, err)
		}
		var n int
		if err := tx.GetObject(ctx, "k", "uncommitted", &n); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("object of a failed tx after reopen: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPragmasAndMigrations(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	var mode string
	var fk, sync, busy int
	for q, dst := range map[string]any{
		"PRAGMA journal_mode": &mode, "PRAGMA foreign_keys": &fk, "PRAGMA synchronous": &sync, "PRAGMA busy_timeout": &busy,
	} {
		if err := s.db.QueryRowContext(ctx, q).Scan(dst); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if mode != "wal" || fk != 1 || sync != 1 || busy != busyTimeoutMS {
		t.Errorf("journal_mode=%s foreign_keys=%d synchronous=%d busy_timeout=%d; want wal, 1, 1 (NORMAL), %d",
			mode, fk, sync, busy, busyTimeoutMS)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var versions []int
	for rows.Next() {
		var v int
		var name, at string
		if err := rows.Scan(&v, &name, &at); err != nil {
			t.Fatal(err)
		}
		if _, err := time.Parse(time.RFC3339Nano, at); err != nil || name == "" {
			t.Errorf("migration %d: name %q applied_at %q (%v)", v, name, at, err)
		}
		versions = append(versions, v)
	}
	if len(versions) != latestVersion(t) || versions[len(versions)-1] != latestVersion(t) {
		t.Errorf("recorded versions %v, latest %d", versions, latestVersion(t))
	}
}

// TestNewerSchemaRefused: a database migrated by a newer drawbridge is not
// opened by this one, and opening an up-to-date one again applies nothing.
func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "drawbridge.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(ctx, path) // idempotent
	if err != nil {
		t.Fatalf("reopening an up-to-date database: %v", err)
	}
	var count int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&count); err != nil || count != latestVersion(t) {
		t.Errorf("%d migrations recorded after reopening (%v), want %d", count, err, latestVersion(t))
	}
	next := latestVersion(t) + 1
	if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', '2040-01-01T00:00:00Z')`, next); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(ctx, path)
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open of a newer schema: %v, want ErrNewerSchema", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(next)) {
		t.Errorf("error %q does not name the database's version %d", err, next)
	}
}

func TestInMemory(t *testing.T) {
	s, err := Open(context.Background(), ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.ObjectTx(ctx, func(o store.Objects) error { return o.PutObject(ctx, "k", "a", 1) }); err != nil {
		t.Fatal(err)
	}
	// One connection means the in-memory database is the same for every tx.
	var n int
	if err := s.ObjectTx(ctx, func(o store.Objects) error { return o.GetObject(ctx, "k", "a", &n) }); err != nil || n != 1 {
		t.Fatalf("in-memory read back %d, %v", n, err)
	}
}

// The queries for active grants (a VM's, the expiry job's) must be served by
// the partial indexes of migrations 0004 and 0006, whose condition is the
// literal 'Initiated': a query that stopped matching it would scan every
// grant ever made, with the same results, just slower and slower. The same
// holds for a VM's and a policy's history (the key_ids indexes of 0006).
func TestActiveGrantQueriesUsePartialIndexes(t *testing.T) {
	if string(jit.StatusInitiated) != "Initiated" {
		t.Fatalf("jit.StatusInitiated is %q; the queries and migration 0004 say 'Initiated'", jit.StatusInitiated)
	}
	s := openTemp(t)
	for _, c := range []struct {
		query, index string
		args         []any
	}{
		{listGrantsQuery(true, false, false, true), "grants_active_vm_ref", []any{"vm", -1}},
		{listGrantsQuery(true, false, true, true), "grants_active_vm_ref", []any{"vm", 22, -1}},
		{listGrantsQuery(false, false, false, true), "grants_active_", []any{-1}},
		{qDueGrants, "grants_active_end", []any{int64(0), -1}},
		{qNextEndTime, "grants_active_end", nil},
		{listGrantsQuery(true, false, false, false), "grants_vm_ref", []any{"vm", -1}},
		{qListRequests, "requests_policy_ref", []any{"p", -1}},
		{qRequestGrants, "requests_policy_ref", []any{"p", -1}},
	} {
		rows, err := s.db.Query("EXPLAIN QUERY PLAN "+c.query, c.args...)
		if err != nil {
			t.Fatalf("%s: %v", c.query, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if !strings.Contains(strings.Join(plan, "; "), "INDEX "+c.index) {
			t.Errorf("%s\nplan %q does not use index %s*", c.query, plan, c.index)
		}
	}
}

// WriterBusy counts every transaction the writer runs, failed ones too, and
// the time it spent on them.
func TestWriterBusyCountsTransactions(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	busy0, jobs0 := s.WriterBusy()
	for i := range 5 {
		_ = s.InTx(ctx, func(tx jit.Tx) error {
			if i == 4 {
				return errors.New("rolled back")
			}
			return tx.PutObject(ctx, "k", fmt.Sprint(i), i)
		})
	}
	busy, jobs := s.WriterBusy()
	if jobs-jobs0 != 5 || busy <= busy0 {
		t.Fatalf("after 5 transactions: %d more jobs, busy %v -> %v", jobs-jobs0, busy0, busy)
	}
}

// AppendAuditRecords stores any number of records (two to a statement, the
// odd one alone) and refuses a taken sequence number in either statement.
func TestAppendAuditRecords(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	body := func(n int) []byte { return []byte(fmt.Sprintf(`{"seq":%d}`, n)) }
	err := s.InTx(ctx, func(jt jit.Tx) error {
		return jt.(txn).AppendAuditRecords(ctx, 1, [][]byte{body(1), body(2), body(3)})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		first int64
		n     int
	}{{3, 2}, {2, 1}, {4, 3}} { // a pair taken, a single taken, a single after a fresh pair
		err := s.InTx(ctx, func(jt jit.Tx) error {
			var bs [][]byte
			for i := range c.n {
				bs = append(bs, body(int(c.first)+i))
			}
			return jt.(txn).AppendAuditRecords(ctx, c.first, bs)
		})
		if c.first == 4 {
			if err != nil {
				t.Fatalf("records 4-6: %v", err)
			}
			continue
		}
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("records from %d (%d): %v, want a conflict", c.first, c.n, err)
		}
	}
	var seqs []int64
	err = s.ObjectReadTx(ctx, func(o store.Objects) error {
		return o.(txn).ListAuditRecords(ctx, func(seq int64, b []byte) error {
			if string(b) != string(body(int(seq))) {
				return fmt.Errorf("record %d is %s", seq, b)
			}
			seqs = append(seqs, seq)
			return nil
		})
	})
	if err != nil || !slices.Equal(seqs, []int64{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("stored records %v, %v", seqs, err)
	}
}
