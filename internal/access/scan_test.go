package access_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
)

// scanningStore is a store with a separate read path for long scans
// (store.ScanReader), counting its uses.
type scanningStore struct {
	*memstore.Store
	scans atomic.Int64
}

func (s *scanningStore) ScanReadTx(ctx context.Context, fn func(store.Objects) error) error {
	s.scans.Add(1)
	return s.Store.ObjectReadTx(ctx, fn)
}

// TestAuditScansUseScanReadTx: listing, paging and verifying the audit
// log, which read all of it, run on the store's scan path (on SQLite, the
// connections that do not memory-map the database).
func TestAuditScansUseScanReadTx(t *testing.T) {
	st := &scanningStore{Store: memstore.New()}
	acc := access.New(st, nil)
	ctx := context.Background()
	if _, _, err := acc.CreateToken(ctx, jit.Actor{Principal: "admin"}, auth.IssueParams{Principal: "alice"}, nil); err != nil {
		t.Fatal(err)
	}
	for name, fn := range map[string]func() error{
		"AuditPage": func() error {
			recs, _, err := acc.AuditPage(ctx, auditstore.Filter{}, nil, 10)
			if err == nil && len(recs) != 1 {
				t.Errorf("AuditPage: %d records, want 1", len(recs))
			}
			return err
		},
		"AuditNewest": func() error {
			recs, _, err := acc.AuditNewest(ctx, auditstore.Filter{}, 0, 10)
			if err == nil && len(recs) != 1 {
				t.Errorf("AuditNewest: %d records, want 1", len(recs))
			}
			return err
		},
		"Audit":              func() error { _, err := acc.Audit(ctx, auditstore.Filter{}); return err },
		"VerifyAudit":        func() error { _, err := acc.VerifyAudit(ctx); return err },
		"VerifyAuditWithKey": func() error { _, err := acc.VerifyAuditWithKey(ctx, nil); return err },
	} {
		before := st.scans.Load()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st.scans.Load() != before+1 {
			t.Errorf("%s ran %d scan transactions, want 1", name, st.scans.Load()-before)
		}
	}
}
