// Package audit owns the shape of drawbridge's audit records and their hash
// chain: each record carries the SHA-256 of a canonical encoding of its
// fields and of the previous record's hash, so editing, deleting, inserting
// or reordering a stored record breaks the chain at a place Verify names.
//
// The package is pure: it does not store records or read the clock. The
// store appends records (in the same transaction as the change they
// describe) by reading the last record and calling Chain.
//
// A hash chain alone proves consistency, not authenticity: someone who can
// rewrite the whole table can recompute every hash, and dropping records
// from the end leaves a valid shorter chain. To detect those, keep the
// latest (Seq, Hash) somewhere the database's writer cannot change (an
// export, a log shipper, a webhook) and compare with VerifyFrom.
package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Results used in Record.Result.
const (
	Succeeded = "succeeded"
	Denied    = "denied" // refused by authentication, authorization or policy rules
	Failed    = "failed" // allowed but did not complete
)

// Record is one audited event: who did what to which target from where,
// how it ended, and the target's state before and after (JSON, may be empty).
type Record struct {
	Seq           int64           `json:"seq"`
	Time          time.Time       `json:"time"`
	Principal     string          `json:"principal"`
	SourceAddress string          `json:"sourceAddress,omitempty"`
	Operation     string          `json:"operation"`
	Target        string          `json:"target,omitempty"`
	Result        string          `json:"result"`
	Detail        string          `json:"detail,omitempty"` // e.g. why it was denied
	Before        json.RawMessage `json:"before,omitempty"`
	After         json.RawMessage `json:"after,omitempty"`
	PrevHash      string          `json:"prevHash"`
	Hash          string          `json:"hash"`

	// canonical is set by NewSucceeded when it encoded Before and After
	// in canonical form itself (CanonicalEncoder), so Chain need not
	// canonicalise them again. Whoever changes Before or After afterwards
	// must build the record anew.
	canonical bool
}

// CanonicalEncoder is implemented by states written to the audit log often
// enough (a request and its grants, on every request) to encode themselves
// straight in the canonical form Chain hashes: what canonicalising
// json.Marshal's encoding would give, byte for byte. AppendCanonicalJSON
// appends it to dst; ok false means it cannot for this value (an unusual
// string, say), and json.Marshal is used instead.
type CanonicalEncoder interface {
	AppendCanonicalJSON(dst []byte) (out []byte, ok bool)
}

// NewSucceeded returns the record of a change that succeeded: principal
// (from address) did op to target at t, described by detail, taking it from
// before to after (each encoded as JSON; nil leaves it empty).
func NewSucceeded(t time.Time, principal, address, op, target, detail string, before, after any) (Record, error) {
	rec := Record{Time: t, Principal: principal, SourceAddress: address, Operation: op, Target: target, Result: Succeeded, Detail: detail}
	var err error
	var canonBefore, canonAfter bool
	if rec.Before, canonBefore, err = encodeState(before); err != nil {
		return Record{}, err
	}
	if rec.After, canonAfter, err = encodeState(after); err != nil {
		return Record{}, err
	}
	rec.canonical = canonBefore && canonAfter
	return rec, nil
}

// encodeState encodes v as JSON, reporting whether it is already in
// canonical form (nil, or written by v's CanonicalEncoder).
func encodeState(v any) (json.RawMessage, bool, error) {
	if v == nil {
		return nil, true, nil
	}
	if ce, ok := v.(CanonicalEncoder); ok {
		if b, ok := ce.AppendCanonicalJSON(make([]byte, 0, 1024)); ok {
			return b, true, nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, false, fmt.Errorf("audit: encode: %w", err)
	}
	return b, false, nil
}

// Chain returns next appended after prev: Seq is prev.Seq+1, PrevHash is
// prev.Hash, and Hash is computed. Pass the zero Record as prev for the first
// record (Seq 1, empty PrevHash). Time is normalised to UTC with microsecond
// precision, and Before/After to canonical JSON, so that what a SQL store
// gives back (PostgreSQL keeps microseconds, jsonb reorders keys) still
// verifies, and every string field is cleaned (Clean: valid UTF-8, at most
// MaxField bytes) so that it reads back through JSON exactly as hashed.
func Chain(prev Record, next Record) Record {
	rec, _ := chain(prev, next)
	return rec
}

// chain is Chain, also reporting whether Before and After came out as
// valid canonical JSON (or empty), which ChainJSON's encoding relies on.
func chain(prev Record, next Record) (Record, bool) {
	next.Seq = prev.Seq + 1
	next.PrevHash = prev.Hash
	next.Time = next.Time.UTC().Truncate(time.Microsecond)
	// Every string is made what storage gives back before it is hashed
	// (valid UTF-8, bounded), here rather than in each caller, so no
	// request's bytes can make a record that fails to verify.
	for _, f := range []*string{&next.Principal, &next.SourceAddress, &next.Operation, &next.Target, &next.Result, &next.Detail} {
		*f = Clean(*f)
	}
	okBefore, okAfter := next.canonical, next.canonical
	if !next.canonical {
		next.Before, okBefore = canonicalize(next.Before)
		next.After, okAfter = canonicalize(next.After)
	}
	next.canonical = false // the record as stored and read back
	next.Hash = computeHash(next, next.Before, next.After)
	return next, okBefore && okAfter
}

// ComputeHash returns the hex SHA-256 of r's canonical encoding: every field
// but Hash, each length-prefixed so that no two different records encode
// alike (moving text from one field into the next changes the hash).
func ComputeHash(r Record) string {
	return computeHash(r, canonicalJSON(r.Before), canonicalJSON(r.After))
}

// computeHash is ComputeHash given r.Before and r.After already in
// canonical form (as Chain leaves them; canonicalJSON is idempotent).
func computeHash(r Record, before, after []byte) string {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte("drawbridge-audit-v1"))
	field([]byte(strconv.FormatInt(r.Seq, 10)))
	field([]byte(r.Time.UTC().Format(time.RFC3339Nano)))
	field([]byte(r.Principal))
	field([]byte(r.SourceAddress))
	field([]byte(r.Operation))
	field([]byte(r.Target))
	field([]byte(r.Result))
	field([]byte(r.Detail))
	field(before)
	field(after)
	field([]byte(r.PrevHash))
	return hex.EncodeToString(h.Sum(nil))
}

// VerifyError names the first record at which the chain is broken.
type VerifyError struct {
	Seq    int64 // the Seq expected at the first bad position
	Reason string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d: %s", e.Seq, e.Reason)
}

// Verify checks a whole log, from its first record (Seq 1) in order. It
// returns nil or a *VerifyError naming the first bad Seq.
func Verify(records []Record) error {
	return VerifyFrom(Record{}, records)
}

// VerifyFrom checks records that continue after anchor, a record (or just
// its Seq and Hash) known to be good, e.g. the last one of a previous
// export. With the zero anchor it is Verify.
func VerifyFrom(anchor Record, records []Record) error {
	v := Verifier{prev: anchor}
	for _, r := range records {
		if err := v.Next(r); err != nil {
			return err
		}
	}
	return nil
}

// Verifier checks a log one record at a time, remembering only the last
// good one, so a log of any length verifies in constant memory. Its zero
// value expects the first record (Seq 1); NewVerifier continues after an
// anchor.
type Verifier struct {
	prev Record
	n    int
}

// Last returns the last record that verified (the anchor before any).
func (v *Verifier) Last() Record { return v.prev }

// Count returns how many records verified.
func (v *Verifier) Count() int { return v.n }

// Next checks r, the next record of the log: nil, or a *VerifyError
// naming the first bad Seq (and Next should not be called again).
func (v *Verifier) Next(r Record) *VerifyError {
	want := v.prev.Seq + 1
	switch {
	case r.Seq != want:
		reason := fmt.Sprintf("found seq %d at position %d", r.Seq, v.n+1)
		switch {
		case r.Seq > want:
			reason += fmt.Sprintf(": record %d is missing (deleted) or records are out of order", want)
		default:
			reason += ": a record was inserted or records are out of order"
		}
		return &VerifyError{Seq: want, Reason: reason}
	case r.PrevHash != v.prev.Hash:
		return &VerifyError{Seq: want, Reason: fmt.Sprintf("prevHash does not match the hash of record %d (a record before it was replaced, or it was inserted)", v.prev.Seq)}
	case ComputeHash(r) != r.Hash:
		return &VerifyError{Seq: want, Reason: "its contents do not match its hash (the record was edited)"}
	}
	v.prev = Record{Seq: r.Seq, Hash: r.Hash}
	v.n++
	return nil
}
