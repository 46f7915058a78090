package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// cachedTx is the writer's transaction seen through the row cache: the
// plain SQL of tx (embedded, so everything not listed here is tx's as is),
// with the reads the request path repeats served from the cache and every
// write recorded in it. It is the one place the cache is read or filled;
// the writer (writer.go) only drops it (rowCache.reset) on a rollback and
// checks it against other connections (rowCache.sync). See cache.go for
// what it holds and its staleness contract.
//
// A write that fails leaves the database in a state the cache did not
// follow, so it drops the cache whole (failed).
type cachedTx struct {
	*tx
	c *rowCache
}

// failed drops the cache if err is not nil, and returns err.
func (t *cachedTx) failed(err error) error {
	if err != nil {
		t.c.reset()
	}
	return err
}

// Objects

// cached returns the body of row (table, kind, key) from the cache, else
// as read returns it, remembering the row or its absence (NotFound of
// what and id).
func (t *cachedTx) cached(table byte, kind, key, what, id string, read func() ([]byte, error)) ([]byte, error) {
	if r, ok := t.c.get(table, kind, key); ok {
		if !r.present {
			return nil, store.NotFound(what, id)
		}
		return r.body, nil
	}
	body, err := read()
	switch {
	case errors.Is(err, store.ErrNotFound):
		t.c.absent(table, kind, key)
	case err == nil:
		t.c.put(table, kind, key, body)
	}
	return body, err
}

func (t *cachedTx) GetObjectRaw(ctx context.Context, kind, key string) ([]byte, error) {
	return t.cached(tableObjects, kind, key, kind, key, func() ([]byte, error) { return t.tx.GetObjectRaw(ctx, kind, key) })
}

func (t *cachedTx) GetObject(ctx context.Context, kind, key string, into any) error {
	return getObject(ctx, t, kind, key, into)
}

func (t *cachedTx) PutObject(ctx context.Context, kind, key string, v any) error {
	return putObject(ctx, t, kind, key, v)
}

func (t *cachedTx) PutObjectRaw(ctx context.Context, kind, key string, body store.EncodedJSON) error {
	if err := t.tx.PutObjectRaw(ctx, kind, key, body); err != nil {
		return t.failed(err)
	}
	t.c.put(tableObjects, kind, key, body.Bytes())
	return nil
}

func (t *cachedTx) DeleteObject(ctx context.Context, kind, key string) error {
	if err := t.tx.DeleteObject(ctx, kind, key); err != nil {
		return t.failed(err)
	}
	t.c.absent(tableObjects, kind, key)
	return nil
}

// Policies

func (t *cachedTx) PutPolicy(ctx context.Context, p jit.Policy) error {
	key, body, err := t.putPolicy(p)
	if errors.Is(err, store.ErrConflict) {
		return err // refused before writing anything
	} else if err != nil {
		return t.failed(err)
	}
	t.c.put(tablePolicies, "", key, body)
	t.c.policiesChanged()
	return nil
}

func (t *cachedTx) GetPolicy(ctx context.Context, id string) (jit.Policy, error) {
	key := strings.ToLower(id)
	body, err := t.cached(tablePolicies, "", key, "JIT policy", id, func() ([]byte, error) {
		return t.oneBody(qGetPolicy, "JIT policy", id, key)
	})
	if err != nil {
		return jit.Policy{}, err
	}
	return t.decodePolicy(body)
}

func (t *cachedTx) DeletePolicy(ctx context.Context, id string) error {
	err := t.tx.DeletePolicy(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return t.failed(err)
	}
	t.c.absent(tablePolicies, "", strings.ToLower(id))
	t.c.policiesChanged()
	return err
}

// PolicyForVM looks the policy's key up (cached), then the policy (cached
// too): every request through InitiateForVM does this.
func (t *cachedTx) PolicyForVM(ctx context.Context, vmID string) (jit.Policy, error) {
	vk := inventory.Key(vmID)
	key, ok := t.c.policyOf[vk]
	if !ok {
		var err error
		if key, err = t.policyKeyOfVM(vk); err != nil {
			return jit.Policy{}, fmt.Errorf("sqlite: get JIT policy for virtual machine %s: %w", vmID, err)
		}
		setBounded(t.c.policyOf, vk, key)
	}
	if key == "" {
		return jit.Policy{}, store.NotFound("JIT policy for virtual machine", vmID)
	}
	return t.GetPolicy(ctx, key)
}

// Audit head

func (t *cachedTx) AuditHead(ctx context.Context) (int64, string, error) {
	if h := t.c.head; h != nil {
		return h.seq, h.hash, nil
	}
	seq, hash, err := t.tx.AuditHead(ctx)
	if err == nil {
		t.c.head = &cachedHead{seq: seq, hash: hash}
	}
	return seq, hash, err
}

func (t *cachedTx) SetAuditHead(ctx context.Context, seq int64, hash string) error {
	if err := t.tx.SetAuditHead(ctx, seq, hash); err != nil {
		return t.failed(err)
	}
	t.c.head = &cachedHead{seq: seq, hash: hash}
	return nil
}

// Requests and grants

// InsertRequest records the grants it stored, and remembers their decoded
// values in the memo: the writer reads an active grant again (a newer
// request ends it).
func (t *cachedTx) InsertRequest(ctx context.Context, r jit.Request) error {
	stored, err := t.insertRequest(r, t.keyID)
	if err != nil {
		return t.failed(err)
	}
	for _, s := range stored {
		g := s.ref.grant
		t.c.put(tableGrants, "", g.ID, s.body)
		t.memo.Remember(s.body, &g)
		if g.Status == jit.StatusInitiated {
			t.c.grantActivated(s.vmKey, s.ref)
		}
	}
	return nil
}

// keyID is tx's keyID, remembering the ids it finds or adds.
func (t *cachedTx) keyID(key string) (int64, error) {
	if id, ok := t.c.keyIDs[key]; ok {
		return id, nil
	}
	id, err := t.tx.keyID(key)
	if err != nil {
		return 0, t.failed(err)
	}
	setBounded(t.c.keyIDs, key, id)
	return id, nil
}

func (t *cachedTx) GetGrant(ctx context.Context, id string) (jit.Grant, error) {
	body, err := t.cached(tableGrants, "", id, "grant", id, func() ([]byte, error) { return t.grantBody(id) })
	if err != nil {
		return jit.Grant{}, err
	}
	return t.decodeGrant(id, body)
}

// ListGrants serves a VM's active grants from the cache: every request
// reads them, to supersede and to compute the VM's firewall. Other
// listings are the plain SQL's.
func (t *cachedTx) ListGrants(ctx context.Context, f jit.GrantFilter) ([]jit.Grant, error) {
	if f.VMID != "" && f.ActiveOnly && f.PolicyID == "" && f.Port == 0 && f.Limit <= 0 {
		return t.activeGrantsOfVM(inventory.Key(f.VMID))
	}
	return t.tx.ListGrants(ctx, f)
}

// activeGrantsOfVM is ListGrants of a VM's active grants, from the cache
// when it has them, else read (in ListGrants' order) and cached.
func (t *cachedTx) activeGrantsOfVM(vmKey string) ([]jit.Grant, error) {
	refs, ok := t.c.active[vmKey]
	if !ok {
		var bodies [][]byte
		var err error
		if refs, bodies, err = t.activeGrantRows(vmKey); err != nil {
			return nil, err
		}
		for i, r := range refs {
			t.c.put(tableGrants, "", r.id, bodies[i])
		}
		t.c.setActiveGrants(vmKey, refs)
	}
	out := make([]jit.Grant, len(refs))
	for i, r := range refs {
		out[i] = r.grant
	}
	return out, nil
}

// UpdateGrant keeps the cached grant and the VM's cached active list in
// step with the row.
func (t *cachedTx) UpdateGrant(ctx context.Context, g jit.Grant) error {
	was, cur, body, err := t.updateGrant(ctx, g, t.GetGrant)
	if errors.Is(err, store.ErrNotFound) {
		return err // nothing written
	} else if err != nil {
		return t.failed(err)
	}
	t.c.put(tableGrants, "", g.ID, body)
	wasActive, isActive := was.Status == jit.StatusInitiated, cur.Status == jit.StatusInitiated
	if isActive {
		// The writer reads an active grant again (a newer request ends
		// it); an ended one only the listings do, which can decode it.
		t.memo.Remember(body, &cur)
	}
	vk := inventory.Key(cur.VMID)
	switch {
	case wasActive && isActive:
		t.c.grantChanged(vk, cur)
	case wasActive && !isActive:
		t.c.grantEnded(vk, cur.ID)
	case !wasActive && isActive:
		// Its position (the request's idx) is not at hand here.
		t.c.forgetActive(vk)
	}
	return nil
}

// activeGrantRows reads the active grants of the VM with key vmKey, in
// ListGrants' order, with their bodies: what activeGrantsOfVM caches.
func (t *cachedTx) activeGrantRows(vmKey string) ([]activeRef, [][]byte, error) {
	rows, err := t.stmt(qActiveGrantsOfVM).QueryContext(noCancel, vmKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: list grants: %w", err)
	}
	defer rows.Close()
	refs := []activeRef{}
	var bodies [][]byte
	for rows.Next() {
		var r activeRef
		var body []byte
		if err := rows.Scan(&r.id, &r.requestID, &r.idx, &r.start, &body); err != nil {
			return nil, nil, fmt.Errorf("sqlite: list grants: %w", err)
		}
		if r.grant, err = t.decodeGrant(r.id, body); err != nil {
			return nil, nil, err
		}
		refs = append(refs, r)
		bodies = append(bodies, body)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("sqlite: list grants: %w", err)
	}
	return refs, bodies, nil
}
