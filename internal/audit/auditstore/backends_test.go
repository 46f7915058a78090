package auditstore_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/pgtest"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
	"github.com/drawbridge/drawbridge/internal/store/postgres"
	"github.com/drawbridge/drawbridge/internal/store/sqlite"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// backends opens an empty store of every kind.
func backends(t *testing.T) map[string]store.ObjectStore {
	t.Helper()
	ctx := context.Background()
	lite, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	out := map[string]store.ObjectStore{"memstore": memstore.New(), "sqlite": lite}
	if testing.Short() {
		return out
	}
	pg, err := postgres.Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	out["postgres"] = pg
	return out
}

func appendRec(t *testing.T, st store.ObjectStore, rec audit.Record) {
	t.Helper()
	ctx := context.Background()
	if err := st.ObjectTx(ctx, func(o store.Objects) error {
		_, err := auditstore.Append(ctx, o, rec)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func verify(t *testing.T, st store.ObjectStore) auditstore.Report {
	t.Helper()
	ctx := context.Background()
	var rep auditstore.Report
	if err := st.ObjectReadTx(ctx, func(o store.Objects) error {
		var err error
		rep, err = auditstore.Verify(ctx, o)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return rep
}

// Strings that are not UTF-8, or huge, in any field of a record (what a
// refused request's path or query puts there) must be stored so that the
// log still verifies on every backend.
func TestHostileStringsVerifyOnEveryBackend(t *testing.T) {
	bad := []string{"\xff", "/drawbridge/v1/grants/\xff/revoke", "a\x00b\xc3", "\xed\xa0\x80", strings.Repeat("x", 4<<20) + "\xfe", strings.Repeat("é", 1000)}
	for name, st := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t0 := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
			for i, s := range bad {
				rec, err := audit.NewSucceeded(t0, s, s, s, s, s, map[string]string{s[:min(len(s), 600)]: s[:min(len(s), 600)]}, []string{s[:min(len(s), 600)]})
				if err != nil {
					t.Fatal(err)
				}
				rec.Result = s
				appendRec(t, st, rec)
				if rep := verify(t, st); !rep.OK || rep.Records != i+1 {
					t.Fatalf("after %q…: %+v", s[:min(len(s), 20)], rep)
				}
			}
			var recs []audit.Record
			ctx := context.Background()
			if err := st.ObjectReadTx(ctx, func(o store.Objects) error {
				var err error
				recs, err = auditstore.List(ctx, o, auditstore.Filter{})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if len(r.Target) > audit.MaxField || len(r.Detail) > audit.MaxField {
					t.Errorf("seq %d: target %d bytes, detail %d bytes; want at most %d", r.Seq, len(r.Target), len(r.Detail), audit.MaxField)
				}
			}
			if last := recs[len(recs)-2]; !strings.HasSuffix(last.Principal, "[4194305 bytes]") {
				t.Errorf("4 MiB principal stored as %q, want a prefix and its length", last.Principal[max(0, len(last.Principal)-40):])
			}
		})
	}
}
