// Package auditstore keeps the hash-chained audit log in any backend's
// generic object storage (store.Objects), so that SQLite, PostgreSQL and the
// in-memory store all hold it unchanged. Records are objects of kind
// "audit.record" keyed by their zero-padded sequence number (so key order is
// log order), and one "audit.head" object remembers the last sequence
// number and hash; or, in a backend's own tables (RecordTable), rows keyed
// by sequence number and a head. Append reads the head, chains the record
// and writes both: called inside the transaction of the change it
// describes, the record commits or rolls back with that change.
package auditstore

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Object kinds and the head's key.
const (
	KindRecord = "audit.record"
	KindHead   = "audit.head"
	headKey    = "head"
)

// Head is the last record's sequence number and hash.
type Head struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// Key returns the object key of the record with sequence number seq.
func Key(seq int64) string { return fmt.Sprintf("%020d", seq) }

// RecordTable is implemented by backends that keep audit records in a
// table of their own keyed by sequence number (SQLite: an INTEGER PRIMARY
// KEY table, the cheapest append it has) instead of as objects of
// KindRecord, and the head in a place of their own instead of the
// KindHead object.
type RecordTable interface {
	// AppendAuditRecords stores bodies as records first, first+1, …; it
	// fails if any of those sequence numbers is taken.
	AppendAuditRecords(ctx context.Context, first int64, bodies [][]byte) error
	// ListAuditRecords calls fn for every stored record in seq order.
	ListAuditRecords(ctx context.Context, fn func(seq int64, body []byte) error) error
	// AuditHead returns the stored head; the zero Head if there is none.
	AuditHead(ctx context.Context) (seq int64, hash string, err error)
	// SetAuditHead replaces the stored head.
	SetAuditHead(ctx context.Context, seq int64, hash string) error
}

// ReadHead returns the log's head where objs keeps it (the zero Head for
// an empty log).
func ReadHead(ctx context.Context, objs store.Objects) (Head, error) {
	if t, ok := objs.(RecordTable); ok {
		seq, hash, err := t.AuditHead(ctx)
		return Head{Seq: seq, Hash: hash}, err
	}
	var h Head
	if err := objs.GetObject(ctx, KindHead, headKey, &h); err != nil && !errors.Is(err, store.ErrNotFound) {
		return Head{}, err
	}
	return h, nil
}

// writeHead replaces the head where objs keeps it.
func writeHead(ctx context.Context, objs store.Objects, h Head) error {
	if t, ok := objs.(RecordTable); ok {
		return t.SetAuditHead(ctx, h.Seq, h.Hash)
	}
	return objs.PutObject(ctx, KindHead, headKey, h)
}

// listRecords calls fn with every stored record's key (Key of its seq) and
// body, in log order.
func listRecords(ctx context.Context, objs store.Objects, fn func(key string, body []byte) error) error {
	if t, ok := objs.(RecordTable); ok {
		return t.ListAuditRecords(ctx, func(seq int64, body []byte) error { return fn(Key(seq), body) })
	}
	return objs.ListObjects(ctx, KindRecord, fn)
}

// Append chains rec after the current head and stores it and the new head
// in objs (the caller's transaction). It returns the stored record.
func Append(ctx context.Context, objs store.Objects, rec audit.Record) (audit.Record, error) {
	out, err := AppendAll(ctx, objs, []audit.Record{rec})
	if err != nil {
		return audit.Record{}, err
	}
	return out[0], nil
}

// AppendAll is Append for several records in order: the same records as
// appending them one by one, with the head read and written once.
func AppendAll(ctx context.Context, objs store.Objects, recs []audit.Record) ([]audit.Record, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	for _, rec := range recs {
		if rec.Time.IsZero() {
			return nil, errors.New("audit: record has no time")
		}
	}
	h, err := ReadHead(ctx, objs)
	if err != nil {
		return nil, fmt.Errorf("audit: read head: %w", err)
	}
	prev := audit.Record{Seq: h.Seq, Hash: h.Hash}
	out := make([]audit.Record, 0, len(recs))
	if t, ok := objs.(RecordTable); ok {
		bodies := make([][]byte, 0, len(recs))
		for _, rec := range recs {
			next, body, err := audit.ChainJSON(prev, rec)
			if err != nil {
				return nil, fmt.Errorf("audit: append record %d: %w", next.Seq, err)
			}
			out, bodies, prev = append(out, next), append(bodies, body), next
		}
		if err := t.AppendAuditRecords(ctx, out[0].Seq, bodies); err != nil {
			return nil, fmt.Errorf("audit: append records %d to %d: %w", out[0].Seq, prev.Seq, err)
		}
	} else {
		for _, rec := range recs {
			next := audit.Chain(prev, rec)
			if err := objs.PutObject(ctx, KindRecord, Key(next.Seq), next); err != nil {
				return nil, fmt.Errorf("audit: append record %d: %w", next.Seq, err)
			}
			out, prev = append(out, next), next
		}
	}
	if err := writeHead(ctx, objs, Head{Seq: prev.Seq, Hash: prev.Hash}); err != nil {
		return nil, fmt.Errorf("audit: update head: %w", err)
	}
	return out, nil
}

// Filter selects records. Zero fields match everything.
type Filter struct {
	Since     time.Time // records at or after
	Principal string    // exact, case-insensitive
	Target    string    // records whose target is this resource ID or below it (case-insensitive)
	Operation string    // records whose operation contains this (case-insensitive)
	Result    string    // exact, case-insensitive
	Limit     int       // the newest Limit matching records; 0: all
}

func (f Filter) match(r audit.Record) bool {
	if !f.Since.IsZero() && r.Time.Before(f.Since) {
		return false
	}
	if f.Principal != "" && !strings.EqualFold(f.Principal, r.Principal) {
		return false
	}
	if f.Operation != "" && !strings.Contains(strings.ToLower(r.Operation), strings.ToLower(f.Operation)) {
		return false
	}
	if f.Result != "" && !strings.EqualFold(f.Result, r.Result) {
		return false
	}
	if f.Target != "" {
		t, want := strings.ToLower(r.Target), strings.TrimRight(strings.ToLower(f.Target), "/")
		if t != want && !strings.HasPrefix(t, want+"/") {
			return false
		}
	}
	return true
}

// List returns matching records in log order (with f.Limit, the newest
// f.Limit of them), reading the store a batch at a time.
func List(ctx context.Context, objs store.Objects, f Filter) ([]audit.Record, error) {
	var out []audit.Record
	n := 0
	err := scan(ctx, objs, 0, func(_ string, r audit.Record) error {
		if !f.match(r) {
			return nil
		}
		if f.Limit > 0 && len(out) == f.Limit {
			out[n%f.Limit] = r // a ring of the newest f.Limit
		} else {
			out = append(out, r)
		}
		n++
		return nil
	})
	if err != nil {
		return nil, err
	}
	if f.Limit > 0 && n > f.Limit {
		k := n % f.Limit
		out = append(out[k:], out[:k]...)
	}
	return out, nil
}

// Report is the outcome of Verify.
type Report struct {
	Records int    `json:"records"`
	HeadSeq int64  `json:"headSeq"`
	Hash    string `json:"headHash,omitempty"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
	// BadSeq is the first sequence number at which the log is broken.
	BadSeq int64 `json:"badSeq,omitempty"`
	// Checkpoints is how many signed checkpoints were checked (by a
	// verifier holding the public key), and LatestCheckpoint the seq of
	// the newest.
	Checkpoints      int   `json:"checkpoints,omitempty"`
	LatestCheckpoint int64 `json:"latestCheckpoint,omitempty"`
}

// Verify checks the whole stored log: every record in key order chains to
// the one before it, each key is its record's sequence number, and the
// head names the last record (so deleting records from the end is caught
// too). A record that does not decode is reported as edited.
func Verify(ctx context.Context, objs store.Objects) (Report, error) {
	return VerifyWithKey(ctx, objs, nil)
}

// VerifyWithKey is Verify that, with a public key, also checks every
// stored checkpoint: its signature verifies under pub and the record at
// its seq has its hash (checkpoints.go).
func VerifyWithKey(ctx context.Context, objs store.Objects, pub ed25519.PublicKey) (Report, error) {
	h, err := ReadHead(ctx, objs)
	if err != nil {
		return Report{}, fmt.Errorf("audit: read head: %w", err)
	}
	rep := Report{HeadSeq: h.Seq, Hash: h.Hash}
	var cv *audit.CheckpointVerifier
	if pub != nil {
		cps, err := Checkpoints(ctx, objs)
		if err != nil {
			return Report{}, err
		}
		if cv, err = audit.NewCheckpointVerifier(pub, cps); err != nil {
			rep.Error = err.Error()
			return rep, nil
		}
		if len(cps) > 0 {
			rep.LatestCheckpoint = cps[len(cps)-1].Seq
		}
	}
	// One record at a time, remembering only the last: a log of any
	// length verifies in constant memory.
	var v audit.Verifier
	var bad *audit.VerifyError
	err = scanRaw(ctx, objs, 0, func(key string, body []byte) error {
		want := v.Last().Seq + 1
		var r audit.Record
		if err := json.Unmarshal(body, &r); err != nil {
			bad = &audit.VerifyError{Seq: want, Reason: "the stored record does not decode (it was edited): " + err.Error()}
			return errStop
		}
		if key != Key(r.Seq) {
			bad = &audit.VerifyError{Seq: want, Reason: fmt.Sprintf("record stored under key %s says it is seq %d (records were moved or reordered)", key, r.Seq)}
			return errStop
		}
		if err := v.Next(r); err != nil {
			bad = err
			return errStop
		}
		if cv != nil {
			if bad = cv.Record(r); bad != nil {
				return errStop
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return Report{}, err
	}
	rep.Records = v.Count()
	if last := v.Last(); bad == nil && (last.Seq != h.Seq || last.Hash != h.Hash) {
		bad = &audit.VerifyError{Seq: last.Seq + 1, Reason: fmt.Sprintf("the head says the log ends at seq %d, but the last stored record is seq %d (records were deleted from the end, or the head was changed)", h.Seq, last.Seq)}
	}
	if cv != nil && bad == nil {
		bad = cv.Finish(v.Last())
	}
	if bad != nil {
		rep.Error, rep.BadSeq = bad.Error(), bad.Seq
		return rep, nil
	}
	rep.OK = true
	if cv != nil {
		rep.Checkpoints = cv.Matched()
	}
	return rep, nil
}
