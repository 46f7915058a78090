// Package memstore owns the fake store: an in-memory implementation of
// jit.Store and store.ObjectStore that the domain's tests (jit, access,
// api) run on, and nothing in production uses. The conformance suite
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
	"strings"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
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

// Objects

func (t *tx) GetObject(ctx context.Context, kind, key string, into any) error {
	if t.done {
		return errTxDone
	}
	body, ok := t.s.objects[kind][key]
	if !ok {
		return store.NotFound(kind, key)
	}
	return json.Unmarshal(body, into)
}

func (t *tx) PutObject(ctx context.Context, kind, key string, v any) error {
	if err := t.writable("put object"); err != nil {
		return err
	}
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("memstore: encode %s %q: %w", kind, key, err)
	}
	m, ok := t.s.objects[kind]
	if !ok {
		m = map[string][]byte{}
		set(t, t.s.objects, kind, m)
	}
	set(t, m, key, body)
	return nil
}

func (t *tx) DeleteObject(ctx context.Context, kind, key string) error {
	if err := t.writable("delete object"); err != nil {
		return err
	}
	if m, ok := t.s.objects[kind]; ok {
		del(t, m, key)
	}
	return nil
}

func (t *tx) ListObjects(ctx context.Context, kind string, fn func(key string, body []byte) error) error {
	if t.done {
		return errTxDone
	}
	m := t.s.objects[kind]
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	bodies := make([][]byte, len(keys))
	for i, k := range keys {
		bodies[i] = append([]byte(nil), m[k]...)
	}
	// Snapshot first, so fn may change objects of this kind while listing.
	for i, k := range keys {
		if err := fn(k, bodies[i]); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) GetVM(ctx context.Context, id string) (inventory.VM, error) {
	return inventory.GetVM(ctx, t, id)
}

// Policies

func (t *tx) PutPolicy(ctx context.Context, p jit.Policy) error {
	if err := t.writable("put policy"); err != nil {
		return err
	}
	if p.ID == "" {
		return errors.New("memstore: put policy: policy has no ID")
	}
	key := strings.ToLower(p.ID)
	var vmKeys []string
	for _, v := range p.DistinctVMs() {
		vk := inventory.Key(v.ID)
		if holder, ok := t.s.policyVMs[vk]; ok && holder != key {
			return fmt.Errorf("virtual machine %s is already in JIT policy %s: %w", v.ID, holder, store.ErrConflict)
		}
		vmKeys = append(vmKeys, vk)
	}
	p = p.InUTC()
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("memstore: encode policy %s: %w", p.ID, err)
	}
	if old, ok := t.s.policies[key]; ok {
		for _, vk := range old.vmKeys {
			del(t, t.s.policyVMs, vk)
		}
	}
	for _, vk := range vmKeys {
		set(t, t.s.policyVMs, vk, key)
	}
	set(t, t.s.policies, key, policyRow{location: strings.ToLower(p.Location), vmKeys: vmKeys, body: body})
	return nil
}

func (t *tx) GetPolicy(ctx context.Context, id string) (jit.Policy, error) {
	if t.done {
		return jit.Policy{}, errTxDone
	}
	row, ok := t.s.policies[strings.ToLower(id)]
	if !ok {
		return jit.Policy{}, store.NotFound("JIT policy", id)
	}
	return decode[jit.Policy](row.body)
}

func (t *tx) DeletePolicy(ctx context.Context, id string) error {
	if err := t.writable("delete policy"); err != nil {
		return err
	}
	key := strings.ToLower(id)
	row, ok := t.s.policies[key]
	if !ok {
		return store.NotFound("JIT policy", id)
	}
	for _, vk := range row.vmKeys {
		del(t, t.s.policyVMs, vk)
	}
	del(t, t.s.policies, key)
	return nil
}

func (t *tx) ListPolicies(ctx context.Context, scope, location string) ([]jit.Policy, error) {
	if t.done {
		return nil, errTxDone
	}
	sc := strings.TrimSuffix(strings.ToLower(scope), "/")
	loc := strings.ToLower(location)
	var keys []string
	for k, row := range t.s.policies {
		if sc != "" && k != sc && !strings.HasPrefix(k, sc+"/") {
			continue
		}
		if loc != "" && row.location != loc {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]jit.Policy, 0, len(keys))
	for _, k := range keys {
		p, err := decode[jit.Policy](t.s.policies[k].body)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (t *tx) PolicyForVM(ctx context.Context, vmID string) (jit.Policy, error) {
	if t.done {
		return jit.Policy{}, errTxDone
	}
	key, ok := t.s.policyVMs[inventory.Key(vmID)]
	if !ok {
		return jit.Policy{}, store.NotFound("JIT policy for virtual machine", vmID)
	}
	return decode[jit.Policy](t.s.policies[key].body)
}

// Requests and grants

func (t *tx) InsertRequest(ctx context.Context, r jit.Request) error {
	if err := t.writable("insert request"); err != nil {
		return err
	}
	if r.ID == "" {
		return errors.New("memstore: insert request: request has no ID")
	}
	if _, ok := t.s.requests[r.ID]; ok {
		return fmt.Errorf("request %s already exists: %w", r.ID, store.ErrConflict)
	}
	// Validate everything before the first write, so a failure changes nothing.
	seen := map[string]bool{}
	for i, g := range r.Grants {
		if g.ID == "" || g.EndTime.IsZero() {
			return fmt.Errorf("memstore: insert request %s: grant %d has no ID or no end time", r.ID, i)
		}
		if _, ok := t.s.grants[g.ID]; ok || seen[g.ID] {
			return fmt.Errorf("grant %s already exists: %w", g.ID, store.ErrConflict)
		}
		seen[g.ID] = true
	}
	grants := r.Grants
	r.Grants = nil
	r.StartTime = r.StartTime.UTC()
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("memstore: encode request %s: %w", r.ID, err)
	}
	row := requestRow{policyKey: strings.ToLower(r.PolicyID), start: r.StartTime, body: body}
	for i, g := range grants {
		g.RequestID = r.ID
		if g.PolicyID == "" {
			g.PolicyID = r.PolicyID
		}
		g = g.InUTC()
		gb, err := json.Marshal(g)
		if err != nil {
			return fmt.Errorf("memstore: encode grant %s: %w", g.ID, err)
		}
		set(t, t.s.grants, g.ID, grantRow{
			requestID: r.ID, idx: i, policyKey: strings.ToLower(g.PolicyID), vmKey: inventory.Key(g.VMID),
			port: g.Port, status: g.Status, start: g.StartTime, end: g.EndTime, body: gb,
		})
		row.grantIDs = append(row.grantIDs, g.ID)
	}
	set(t, t.s.requests, r.ID, row)
	return nil
}

func (t *tx) ListRequests(ctx context.Context, policyID string, limit int) ([]jit.Request, error) {
	if t.done {
		return nil, errTxDone
	}
	key := strings.ToLower(policyID)
	var ids []string
	for id, row := range t.s.requests {
		if row.policyKey == key && jit.Opened(row.approvalState) {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := t.s.requests[ids[i]], t.s.requests[ids[j]]
		if !a.start.Equal(b.start) {
			return a.start.After(b.start)
		}
		return ids[i] > ids[j]
	})
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	out := make([]jit.Request, 0, len(ids))
	for _, id := range ids {
		row := t.s.requests[id]
		r, err := decode[jit.Request](row.body)
		if err != nil {
			return nil, err
		}
		r.Grants = make([]jit.Grant, 0, len(row.grantIDs))
		for _, gid := range row.grantIDs {
			g, err := decode[jit.Grant](t.s.grants[gid].body)
			if err != nil {
				return nil, err
			}
			r.Grants = append(r.Grants, g)
		}
		out = append(out, r)
	}
	return out, nil
}

func (t *tx) GetGrant(ctx context.Context, id string) (jit.Grant, error) {
	if t.done {
		return jit.Grant{}, errTxDone
	}
	row, ok := t.s.grants[id]
	if !ok {
		return jit.Grant{}, store.NotFound("grant", id)
	}
	return decode[jit.Grant](row.body)
}

// sortedGrants returns the grants that match, in the order less gives,
// decoded, at most limit (0: all).
func (t *tx) sortedGrants(match func(grantRow) bool, less func(a, b grantRow, aID, bID string) bool, limit int) ([]jit.Grant, error) {
	var ids []string
	for id, row := range t.s.grants {
		if match(row) {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool {
		return less(t.s.grants[ids[i]], t.s.grants[ids[j]], ids[i], ids[j])
	})
	if limit > 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	out := make([]jit.Grant, 0, len(ids))
	for _, id := range ids {
		g, err := decode[jit.Grant](t.s.grants[id].body)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// newestFirst orders as the sqlite backend does: start time descending,
// then request ID descending, then position in the request.
func newestFirst(a, b grantRow, _, _ string) bool {
	switch {
	case !a.start.Equal(b.start):
		return a.start.After(b.start)
	case a.requestID != b.requestID:
		return a.requestID > b.requestID
	}
	return a.idx < b.idx
}

func (t *tx) ListGrants(ctx context.Context, f jit.GrantFilter) ([]jit.Grant, error) {
	if t.done {
		return nil, errTxDone
	}
	vm, pol := inventory.Key(f.VMID), strings.ToLower(f.PolicyID)
	return t.sortedGrants(func(g grantRow) bool {
		return (f.VMID == "" || g.vmKey == vm) &&
			(f.PolicyID == "" || g.policyKey == pol) &&
			(f.Port == 0 || g.port == f.Port) &&
			(!f.ActiveOnly || g.status == jit.StatusInitiated)
	}, newestFirst, f.Limit)
}

func (t *tx) UpdateGrant(ctx context.Context, g jit.Grant) error {
	if err := t.writable("update grant"); err != nil {
		return err
	}
	row, ok := t.s.grants[g.ID]
	if !ok {
		return store.NotFound("grant", g.ID)
	}
	cur, err := decode[jit.Grant](row.body)
	if err != nil {
		return err
	}
	// Only the mutable fields change; identity, port, source and times
	// stay (but for a Pending grant's window, see WithStateOf).
	cur = cur.WithStateOf(g)
	body, err := json.Marshal(cur)
	if err != nil {
		return fmt.Errorf("memstore: encode grant %s: %w", g.ID, err)
	}
	row.status, row.start, row.end, row.body = cur.Status, cur.StartTime, cur.EndTime, body
	set(t, t.s.grants, g.ID, row)
	return nil
}

func (t *tx) DueGrants(ctx context.Context, now time.Time, limit int) ([]jit.Grant, error) {
	if t.done {
		return nil, errTxDone
	}
	return t.sortedGrants(func(g grantRow) bool {
		return g.status == jit.StatusInitiated && !g.end.After(now)
	}, func(a, b grantRow, aID, bID string) bool {
		if !a.end.Equal(b.end) {
			return a.end.Before(b.end)
		}
		return aID < bID
	}, limit)
}

func (t *tx) NextEndTime(ctx context.Context) (time.Time, bool, error) {
	if t.done {
		return time.Time{}, false, errTxDone
	}
	var next time.Time
	found := false
	for _, g := range t.s.grants {
		if g.status == jit.StatusInitiated && (!found || g.end.Before(next)) {
			next, found = g.end, true
		}
	}
	return next, found, nil
}
