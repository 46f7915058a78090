// Package store owns what every persistence backend shares: the errors a
// backend returns and the generic object storage that inventory and the
// simulated network live in. The domain's own store interfaces (jit.Store)
// use these; backends live in sub-packages (sqlite, postgres).
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/jsonmemo"
)

// ErrNotFound is returned (possibly wrapped) when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// NotFound returns the error a backend gives for the missing row what
// (a kind of object, "grant", "JIT policy") with key.
func NotFound(what, key string) error {
	return fmt.Errorf("%s %q: %w", what, key, ErrNotFound)
}

// ErrConflict is returned when a write conflicts with existing state
// (a duplicate key, or an optimistic-concurrency check that failed).
var ErrConflict = errors.New("conflict")

// EncodedJSON is JSON that json.Marshal produced, so valid by
// construction: a store can keep it as given without checking it again
// (checking measured a tenth of the cost of storing a simulated NSG).
type EncodedJSON struct{ b []byte }

// EncodeJSON encodes v with json.Marshal.
func EncodeJSON(v any) (EncodedJSON, error) {
	b, err := json.Marshal(v)
	return EncodedJSON{b}, err
}

// Bytes returns the encoding; the caller must not modify it.
func (j EncodedJSON) Bytes() []byte { return j.b }

// RawObjects is implemented by object stores that keep an object's JSON
// bytes as given and return them unchanged (the SQLite store), sparing a
// caller that works with the bytes a decode and re-encode on each side.
type RawObjects interface {
	// GetObjectRaw returns the object's stored JSON, or ErrNotFound. The
	// caller must not modify the bytes.
	GetObjectRaw(ctx context.Context, kind, key string) ([]byte, error)
	// PutObjectRaw inserts or replaces the object with body, which
	// GetObjectRaw then returns; body's bytes must not be modified
	// afterwards.
	PutObjectRaw(ctx context.Context, kind, key string, body EncodedJSON) error
	// Memo is the store's decode memo: decoding the bytes GetObjectRaw
	// returned through it skips encoding/json for objects read again
	// unchanged.
	Memo() *jsonmemo.Memo
}

// Objects stores JSON documents under (kind, key). Keys are compared as given:
// callers normalise them (resource IDs are lower-cased by resource.ID.Key).
type Objects interface {
	// GetObject decodes the object into into (a pointer to a zero value:
	// backends may set the whole value rather than merge into it, as
	// json.Unmarshal would), or returns ErrNotFound.
	GetObject(ctx context.Context, kind, key string, into any) error
	// PutObject inserts or replaces the object with v encoded as JSON.
	PutObject(ctx context.Context, kind, key string, v any) error
	// DeleteObject removes the object; deleting a missing object is not an error.
	DeleteObject(ctx context.Context, kind, key string) error
	// ListObjects calls fn for every object of kind, in key order.
	ListObjects(ctx context.Context, kind string, fn func(key string, body []byte) error) error
}

// ObjectStore runs functions over Objects inside one transaction: all of
// ObjectTx's writes commit together or not at all.
type ObjectStore interface {
	ObjectTx(ctx context.Context, fn func(Objects) error) error

	// ObjectReadTx runs fn in one read-only transaction, for callers that
	// only read. fn sees one consistent snapshot of committed data and may
	// run concurrently with other transactions. fn must not write: a
	// backend may fail a write with an error, and whatever fn writes is
	// never committed, whatever fn returns. fn may be run more than once
	// (as ObjectTx may), so it must have no effects outside the
	// transaction that a second run would repeat.
	ObjectReadTx(ctx context.Context, fn func(Objects) error) error
}

// ErrReadOnly is returned (wrapped) by a backend that refuses a write made
// inside a read-only transaction (jit.Store.ReadTx, ObjectStore.ObjectReadTx).
// Backends need not refuse writes there, but never commit them.
var ErrReadOnly = errors.New("write in a read-only transaction")

// ErrUnavailable is returned (wrapped) when the database cannot be reached
// or the connection was lost mid-transaction: nothing the transaction wrote
// was committed (or, for a lost COMMIT, the outcome is unknown), and trying
// again later may succeed. The API answers it with 503.
var ErrUnavailable = errors.New("database unavailable")
