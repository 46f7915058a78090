package auditstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// RecordRange is implemented by RecordTable backends that can read the
// records after a sequence number a page at a time (SQLite), so that
// listing and verifying a log of any length holds one page in memory.
type RecordRange interface {
	// ListAuditRecordsAfter calls fn for at most limit stored records
	// with seq > after, in seq order.
	ListAuditRecordsAfter(ctx context.Context, after int64, limit int, fn func(seq int64, body []byte) error) error
}

// ObjectRange is implemented by object stores that can list the objects
// of a kind whose keys sort after a key, a page at a time (PostgreSQL,
// memstore).
type ObjectRange interface {
	// ListObjectsAfter calls fn for at most limit objects of kind whose
	// key sorts after after, in key order.
	ListObjectsAfter(ctx context.Context, kind, after string, limit int, fn func(key string, body []byte) error) error
}

// scanBatch is how many records one read of the store returns.
const scanBatch = 1000

var errStop = errors.New("stop")

// recordsAfter calls fn for at most limit stored records with seq > after
// in log order, with each record's key and body, holding at most one
// batch in memory where the backend allows (RecordRange, ObjectRange).
func recordsAfter(ctx context.Context, objs store.Objects, after int64, limit int, fn func(key string, body []byte) error) error {
	switch t := objs.(type) {
	case RecordRange:
		return t.ListAuditRecordsAfter(ctx, after, limit, func(seq int64, body []byte) error { return fn(Key(seq), body) })
	case ObjectRange:
		if _, isTable := objs.(RecordTable); !isTable {
			return t.ListObjectsAfter(ctx, KindRecord, Key(after), limit, fn)
		}
	}
	// Any other backend: the whole list, skipping what comes before.
	n := 0
	err := listRecords(ctx, objs, func(key string, body []byte) error {
		if key <= Key(after) {
			return nil
		}
		if n == limit {
			return errStop
		}
		n++
		return fn(key, body)
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// scanRaw calls fn for every stored record with seq > after, in log
// order, reading the store a batch at a time: memory stays bounded however
// long the log is. An error from fn (errStop to just stop) ends the scan.
func scanRaw(ctx context.Context, objs store.Objects, after int64, fn func(key string, body []byte) error) error {
	for {
		n, last := 0, after
		err := recordsAfter(ctx, objs, after, scanBatch, func(key string, body []byte) error {
			n++
			if s, err := strconv.ParseInt(key, 10, 64); err == nil {
				last = s
			}
			return fn(key, body)
		})
		if err != nil || n < scanBatch || last == after {
			return err
		}
		after = last
	}
}

// scan is scanRaw with each record decoded.
func scan(ctx context.Context, objs store.Objects, after int64, fn func(key string, r audit.Record) error) error {
	return scanRaw(ctx, objs, after, func(key string, body []byte) error {
		var r audit.Record
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("audit: record %s: %w", key, err)
		}
		return fn(key, r)
	})
}

// PageSize and MaxPageSize bound a page of Page: the default, and the
// most a caller may ask for.
const (
	PageSize    = 1000
	MaxPageSize = 5000
	// maxScanPerPage bounds how many records one Page reads looking for
	// matches, so a selective filter over a long log answers in bounded
	// time: the page may then be short, or empty, with a cursor to go on.
	maxScanPerPage = 50 * PageSize
)

// Cursor is where a Page starts: after the record with seq After, up to
// and including seq UpTo (the head when the first page was read, so that
// following a listing to its end terminates and gives a consistent
// snapshot).
type Cursor struct {
	After int64
	UpTo  int64
}

// String encodes c as the opaque skip token of a nextLink.
func (c Cursor) String() string {
	return strconv.FormatInt(c.After, 10) + "-" + strconv.FormatInt(c.UpTo, 10)
}

// ParseCursor decodes a skip token made by Cursor.String.
func ParseCursor(s string) (Cursor, error) {
	var c Cursor
	i := 0
	for i < len(s) && s[i] != '-' {
		i++
	}
	a, err1 := strconv.ParseInt(s[:i], 10, 64)
	var u int64
	var err2 error
	if i < len(s) {
		u, err2 = strconv.ParseInt(s[i+1:], 10, 64)
	} else {
		err2 = errors.New("no upper bound")
	}
	if err1 != nil || err2 != nil || a < 0 || u < a {
		return c, fmt.Errorf("not a skip token this server made: %.40q", s)
	}
	return Cursor{After: a, UpTo: u}, nil
}

// Page returns up to size records matching f (f.Limit aside) from the
// cursor on, in log order, and the cursor of the next page (nil at the
// end). A nil cursor starts a listing: at the first record, or, with
// f.Limit, at the f.Limit-th newest matching record (found by one scan
// holding only sequence numbers), and up to the current head.
func Page(ctx context.Context, objs store.Objects, f Filter, cur *Cursor, size int) ([]audit.Record, *Cursor, error) {
	size = min(max(size, 1), MaxPageSize)
	if cur == nil {
		h, err := ReadHead(ctx, objs)
		if err != nil {
			return nil, nil, fmt.Errorf("audit: read head: %w", err)
		}
		cur = &Cursor{UpTo: h.Seq}
		if f.Limit > 0 {
			after, err := newestStart(ctx, objs, f, h.Seq)
			if err != nil {
				return nil, nil, err
			}
			cur.After = after
		}
	}
	var out []audit.Record
	scanned, last, more := 0, cur.After, false
	err := scan(ctx, objs, cur.After, func(_ string, r audit.Record) error {
		if r.Seq > cur.UpTo {
			return errStop
		}
		if len(out) == size || scanned == maxScanPerPage {
			more = true
			return errStop
		}
		scanned, last = scanned+1, r.Seq
		if f.match(r) {
			out = append(out, r)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, nil, err
	}
	if !more {
		return out, nil, nil
	}
	return out, &Cursor{After: last, UpTo: cur.UpTo}, nil
}

// newestStart returns the seq after which the f.Limit newest records
// matching f (up to seq upTo) begin: a ring of their sequence numbers.
func newestStart(ctx context.Context, objs store.Objects, f Filter, upTo int64) (int64, error) {
	ring := make([]int64, f.Limit)
	n := 0
	err := scan(ctx, objs, 0, func(_ string, r audit.Record) error {
		if r.Seq > upTo {
			return errStop
		}
		if f.match(r) {
			ring[n%len(ring)] = r.Seq
			n++
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return 0, err
	}
	if n <= len(ring) {
		return 0, nil
	}
	return ring[n%len(ring)] - 1, nil
}

// NewestPage returns the newest size records matching f whose seq is at
// most upTo (0: the head), newest first, and the bound to pass as upTo for
// the page of older ones (0 when there are none). It reads the log in
// constant memory: one scan to find where the page starts, then the page.
func NewestPage(ctx context.Context, objs store.Objects, f Filter, upTo int64, size int) ([]audit.Record, int64, error) {
	size = min(max(size, 1), MaxPageSize)
	if upTo <= 0 {
		h, err := ReadHead(ctx, objs)
		if err != nil {
			return nil, 0, fmt.Errorf("audit: read head: %w", err)
		}
		upTo = h.Seq
	}
	f.Limit = size
	after, err := newestStart(ctx, objs, f, upTo)
	if err != nil {
		return nil, 0, err
	}
	var out []audit.Record
	for cur := &(Cursor{After: after, UpTo: upTo}); cur != nil && len(out) < size; {
		var recs []audit.Record
		if recs, cur, err = Page(ctx, objs, f, cur, size-len(out)); err != nil {
			return nil, 0, err
		}
		out = append(out, recs...)
	}
	slices.Reverse(out)
	var older int64
	if after > 0 && len(out) > 0 {
		older = out[len(out)-1].Seq - 1
	}
	return out, older, nil
}
