package auditstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/store"
)

// fill appends n records, principal p0, p1, p2 in turn.
func fill(t *testing.T, st store.ObjectStore, n int) {
	t.Helper()
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var recs []audit.Record
	for i := range n {
		recs = append(recs, audit.Record{Time: t0.Add(time.Duration(i) * time.Second), Principal: fmt.Sprintf("p%d", i%3), Operation: "op", Result: audit.Succeeded})
	}
	if err := st.ObjectTx(ctx, func(o store.Objects) error {
		_, err := auditstore.AppendAll(ctx, o, recs)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// pages follows the cursors of Page to the end and returns every record
// and the number of pages.
func pages(t *testing.T, st store.ObjectStore, f auditstore.Filter, size int, during func()) ([]audit.Record, int) {
	t.Helper()
	ctx := context.Background()
	var all []audit.Record
	var cur *auditstore.Cursor
	for n := 1; ; n++ {
		var page []audit.Record
		if err := st.ObjectReadTx(ctx, func(o store.Objects) error {
			var err error
			page, cur, err = auditstore.Page(ctx, o, f, cur, size)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(page) > size {
			t.Fatalf("page %d has %d records, more than %d", n, len(page), size)
		}
		all = append(all, page...)
		if cur == nil {
			return all, n
		}
		if c, err := auditstore.ParseCursor(cur.String()); err != nil || c != *cur {
			t.Fatalf("cursor %v does not round-trip: %v %v", cur, c, err)
		}
		if during != nil {
			during()
		}
		if n > 100 {
			t.Fatal("paging does not end")
		}
	}
}

func TestPageOnEveryBackend(t *testing.T) {
	for name, st := range backends(t) {
		t.Run(name, func(t *testing.T) {
			fill(t, st, 2500)
			// Records appended while paging (two, p0's) are not in this
			// listing: it ends at the head it started from.
			all, n := pages(t, st, auditstore.Filter{}, 1000, func() { fill(t, st, 1) })
			if len(all) != 2500 || n != 3 {
				t.Fatalf("%d records in %d pages, want 2500 in 3", len(all), n)
			}
			for i, r := range all {
				if r.Seq != int64(i+1) {
					t.Fatalf("record %d has seq %d", i, r.Seq)
				}
			}
			if err := audit.Verify(all); err != nil {
				t.Fatal(err)
			}
			p1, _ := pages(t, st, auditstore.Filter{Principal: "P1"}, 300, nil)
			if len(p1) != 833 || p1[0].Seq != 2 || p1[832].Seq != 2498 {
				t.Fatalf("principal p1: %d records (first %d), want 833 from seq 2 to 2498", len(p1), p1[0].Seq)
			}
			newest, n := pages(t, st, auditstore.Filter{Principal: "p0", Limit: 5}, 2, nil)
			if len(newest) != 5 || n != 3 || newest[0].Seq != 2494 || newest[4].Seq != 2502 {
				t.Fatalf("newest 5 of p0: %d records in %d pages, first seq %d", len(newest), n, newest[0].Seq)
			}
			if rep := verify(t, st); !rep.OK || rep.Records != 2502 {
				t.Fatalf("verify: %+v", rep)
			}
		})
	}
}

func TestParseCursorRefusesJunk(t *testing.T) {
	for _, s := range []string{"", "x", "5", "5-", "-5", "7-3", "1-2-3", "\xff"} {
		if _, err := auditstore.ParseCursor(s); err == nil {
			t.Errorf("ParseCursor(%q) accepted", s)
		}
	}
}

// NewestPage pages the log newest first (the web console's audit page),
// with every filter applied before the page is cut, so pages stay full.
func TestNewestPageOnEveryBackend(t *testing.T) {
	for name, st := range backends(t) {
		t.Run(name, func(t *testing.T) {
			fill(t, st, 250) // seq 1..250, principal p(seq-1)%3
			ctx := context.Background()
			newest := func(f auditstore.Filter, upTo int64, size int) ([]audit.Record, int64) {
				var recs []audit.Record
				var older int64
				if err := st.ObjectReadTx(ctx, func(o store.Objects) error {
					var err error
					recs, older, err = auditstore.NewestPage(ctx, o, f, upTo, size)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				return recs, older
			}
			var seqs []int64
			upTo := int64(0)
			for n := 0; ; n++ {
				recs, older := newest(auditstore.Filter{Principal: "p1"}, upTo, 30)
				if older != 0 && len(recs) != 30 {
					t.Fatalf("page %d: %d records, want a full page of 30", n, len(recs))
				}
				for _, r := range recs {
					seqs = append(seqs, r.Seq)
				}
				if older == 0 {
					break
				}
				if n > 10 {
					t.Fatal("paging does not end")
				}
				upTo = older
			}
			// p1 holds seq 2, 5, ..., 248: 83 records, newest first.
			if len(seqs) != 83 || seqs[0] != 248 || seqs[82] != 2 {
				t.Fatalf("p1 newest first: %d records from %v to %v, want 83 from 248 to 2", len(seqs), seqs[0], seqs[len(seqs)-1])
			}
			for i := 1; i < len(seqs); i++ {
				if seqs[i] != seqs[i-1]-3 {
					t.Fatalf("record %d has seq %d after %d", i, seqs[i], seqs[i-1])
				}
			}
			if recs, older := newest(auditstore.Filter{Result: "failed"}, 0, 10); len(recs) != 0 || older != 0 {
				t.Fatalf("no failed records: got %d, older %d", len(recs), older)
			}
			if recs, _ := newest(auditstore.Filter{Operation: "OP"}, 0, 5); len(recs) != 5 || recs[0].Seq != 250 {
				t.Fatalf("operation filter: %d records, first %d", len(recs), recs[0].Seq)
			}
		})
	}
}
