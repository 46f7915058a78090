// Package memstore owns the fake store: an in-memory implementation of
// jit.Store and store.ObjectStore that the domain's tests (jit, access,
// api, audit, providers) run on, and nothing in production uses. It is the
// one fake of the store, as Tailscale's fake_netfilter.go is of netfilter:
// a test that needs a store and does not test a backend uses this one. The conformance suite
// (storetest.Run, run by memstore_test.go as by the sqlite and postgres
// tests) holds it to the same contract as the real backends: transactions
// run one at a time (read-only ones side by side, but never beside a
// writing one), an undo log puts back everything a failed (or panicking)
// transaction changed, and values are stored as JSON, so callers never
// share memory with the store and times come back in UTC.
package memstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Store is an in-memory store. The zero value is not usable; call New.
type Store struct {
	// mu is held for the whole of each transaction: locked by InTx and
	// ObjectTx, read-locked by ReadTx and ObjectReadTx.
	mu sync.RWMutex

	objects   map[string]map[string][]byte // kind → key → JSON
	policies  map[string]policyRow         // lower-cased ID →
	policyVMs map[string]string            // VM key → policy key
	requests  map[string]requestRow        // request ID →
	grants    map[string]grantRow          // grant ID →
}

type policyRow struct {
	location string // lower-cased
	vmKeys   []string
	body     []byte
}

type requestRow struct {
	policyKey string
	start     time.Time
	grantIDs  []string // in request order
	body      []byte
	// approvalState and approval are the approval record (approval.go);
	// empty for a request that needed no approval.
	approvalState string
	approval      []byte
}

type grantRow struct {
	requestID string
	idx       int
	policyKey string
	vmKey     string
	port      int
	status    jit.Status
	start     time.Time
	end       time.Time
	body      []byte
}

var (
	_ jit.Store         = (*Store)(nil)
	_ store.ObjectStore = (*Store)(nil)
	_ jit.Tx            = (*tx)(nil)
)

// New returns an empty store.
func New() *Store {
	return &Store{
		objects:   map[string]map[string][]byte{},
		policies:  map[string]policyRow{},
		policyVMs: map[string]string{},
		requests:  map[string]requestRow{},
		grants:    map[string]grantRow{},
	}
}

// InTx runs fn with the store to itself and commits if fn returns nil;
// otherwise, or if fn panics, every change fn made is undone. Calling InTx
// or ObjectTx from inside fn deadlocks, as it would on a real backend.
func (s *Store) InTx(ctx context.Context, fn func(jit.Tx) error) error {
	return s.inTx(ctx, false, func(t *tx) error { return fn(t) })
}

// ObjectTx is InTx for callers that only need the object storage.
func (s *Store) ObjectTx(ctx context.Context, fn func(store.Objects) error) error {
	return s.inTx(ctx, false, func(t *tx) error { return fn(t) })
}

// ReadTx runs fn in a read-only transaction: read-only transactions run
// side by side, but not beside InTx or ObjectTx, so fn sees committed data
// only. Every write fails with an error wrapping store.ErrReadOnly, so
// nothing fn does is kept. Calling InTx or ObjectTx from inside fn deadlocks.
func (s *Store) ReadTx(ctx context.Context, fn func(jit.Tx) error) error {
	return s.inTx(ctx, true, func(t *tx) error { return fn(t) })
}

// ObjectReadTx is ReadTx for callers that only read objects.
func (s *Store) ObjectReadTx(ctx context.Context, fn func(store.Objects) error) error {
	return s.inTx(ctx, true, func(t *tx) error { return fn(t) })
}

func (s *Store) inTx(ctx context.Context, readOnly bool, fn func(*tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if readOnly {
		s.mu.RLock()
		defer s.mu.RUnlock()
	} else {
		s.mu.Lock()
		defer s.mu.Unlock()
	}
	t := &tx{s: s, readOnly: readOnly}
	committed := false
	defer func() {
		t.done = true
		if !committed {
			for i := len(t.undo) - 1; i >= 0; i-- {
				t.undo[i]()
			}
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	if readOnly {
		// Nothing to commit (writes were refused); never keep anything.
		return nil
	}
	// Like a real backend, a transaction whose context ended does not commit.
	if err := ctx.Err(); err != nil {
		return err
	}
	committed = true
	return nil
}

// tx is one transaction; valid only inside the function given to InTx.
type tx struct {
	s        *Store
	undo     []func()
	done     bool
	readOnly bool // ReadTx: every write fails
}

var errTxDone = errors.New("memstore: transaction has already ended")

// writable is the check every write makes first.
func (t *tx) writable(what string) error {
	if t.done {
		return errTxDone
	}
	if t.readOnly {
		return fmt.Errorf("memstore: %s: %w", what, store.ErrReadOnly)
	}
	return nil
}

// set and del change a map and log how to undo the change.
func set[K comparable, V any](t *tx, m map[K]V, k K, v V) {
	old, had := m[k]
	t.undo = append(t.undo, func() {
		if had {
			m[k] = old
		} else {
			delete(m, k)
		}
	})
	m[k] = v
}

func del[K comparable, V any](t *tx, m map[K]V, k K) {
	old, had := m[k]
	if !had {
		return
	}
	t.undo = append(t.undo, func() { m[k] = old })
	delete(m, k)
}

func decode[T any](body []byte) (T, error) {
	var v T
	err := json.Unmarshal(body, &v)
	return v, err
}

// get decodes the row of m at key; no row is store.NotFound(what, id).
func get[T any, V interface{ json() []byte }](t *tx, m map[string]V, key, what, id string) (T, error) {
	var zero T
	if t.done {
		return zero, errTxDone
	}
	row, ok := m[key]
	if !ok {
		return zero, store.NotFound(what, id)
	}
	return decode[T](row.json())
}

// keysWhere returns the keys of the rows of m that match, ordered by less
// (given the rows and their keys), at most limit (0: all).
func keysWhere[V any](m map[string]V, match func(key string, v V) bool, less func(a, b V, aKey, bKey string) bool, limit int) []string {
	var keys []string
	for k, v := range m {
		if match(k, v) {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return less(m[keys[i]], m[keys[j]], keys[i], keys[j]) })
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	return keys
}

// byKey orders rows by key.
func byKey[V any](_, _ V, a, b string) bool { return a < b }

// decodeAll decodes the bodies of the rows of m at keys, in that order.
func decodeAll[T any, V interface{ json() []byte }](m map[string]V, keys []string) ([]T, error) {
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		v, err := decode[T](m[k].json())
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (r policyRow) json() []byte  { return r.body }
func (r requestRow) json() []byte { return r.body }
func (r grantRow) json() []byte   { return r.body }
