package sqlite

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// A batch writes the audit log's head once, before it commits: the head in
// the file is the last committed record's, whether the batch committed at
// once or was rolled back and run again (one of its transactions failed
// after appending), and the log verifies.
func TestBatchWritesAuditHeadOnce(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	appendOne := func(op string, fail error) func(txn) error {
		return func(t txn) error {
			if _, err := auditstore.Append(ctx, t, audit.Record{Time: at, Principal: "p", Operation: op, Result: audit.Succeeded}); err != nil {
				return err
			}
			return fail
		}
	}
	boom := errors.New("boom")
	check := func(step string, wantSeq int64, wantOps []string) {
		t.Helper()
		var seq int64
		var hash string
		if err := s.db.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head`).Scan(&seq, &hash); err != nil || seq != wantSeq {
			t.Fatalf("%s: audit_head = %d %q, %v; want seq %d", step, seq, hash, err, wantSeq)
		}
		err := s.ObjectReadTx(ctx, func(o store.Objects) error {
			rep, err := auditstore.Verify(ctx, o)
			if err != nil || !rep.OK || rep.Records != len(wantOps) {
				t.Errorf("%s: verify = %+v, %v; want %d records", step, rep, err, len(wantOps))
			}
			recs, err := auditstore.List(ctx, o, auditstore.Filter{})
			if err != nil {
				return err
			}
			for i, r := range recs {
				if i >= len(wantOps) || r.Operation != wantOps[i] {
					t.Errorf("%s: record %d is %s, want %v", step, i, r.Operation, wantOps)
				}
			}
			if n := len(recs); n > 0 && recs[n-1].Hash != hash {
				t.Errorf("%s: head hash %q is not the last record's %q", step, hash, recs[n-1].Hash)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	res := runBatchOf(t, s, appendOne("a", nil), appendOne("b", nil), appendOne("c", nil))
	for i, r := range res {
		if r.err != nil {
			t.Fatalf("first batch, job %d: %v", i, r.err)
		}
	}
	check("first batch", 3, []string{"a", "b", "c"})
	res = runBatchOf(t, s, appendOne("d", nil), appendOne("x", boom), appendOne("e", nil))
	if res[0].err != nil || !errors.Is(res[1].err, boom) || res[2].err != nil {
		t.Fatalf("second batch: %+v", res)
	}
	check("second batch", 5, []string{"a", "b", "c", "d", "e"})
	// The writer's cached head agrees: the next append chains on e.
	if err := s.InTx(ctx, func(tx jit.Tx) error {
		_, err := auditstore.Append(ctx, tx, audit.Record{Time: at, Principal: "p", Operation: "f", Result: audit.Succeeded})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	check("after", 6, []string{"a", "b", "c", "d", "e", "f"})
}
