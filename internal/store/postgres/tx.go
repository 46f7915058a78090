package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/jitrows"
)

var _ jit.Tx = (*tx)(nil)

const (
	qGetObject    = `SELECT body FROM objects WHERE kind = $1 AND key = $2`
	qPutObject    = `INSERT INTO objects (kind, key, body) VALUES ($1, $2, $3) ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body`
	qDeleteObject = `DELETE FROM objects WHERE kind = $1 AND key = $2`
	qListObjects  = `SELECT key, body FROM objects WHERE kind = $1 ORDER BY key`

	qPolicyOfVM    = `SELECT policy_key FROM policy_vms WHERE vm_key = $1`
	qPutPolicy     = `INSERT INTO policies (key, location, body) VALUES ($1, $2, $3) ON CONFLICT (key) DO UPDATE SET location = excluded.location, body = excluded.body`
	qClearPolicyVM = `DELETE FROM policy_vms WHERE policy_key = $1`
	qAddPolicyVM   = `INSERT INTO policy_vms (vm_key, policy_key) VALUES ($1, $2) ON CONFLICT (vm_key) DO NOTHING`
	qGetPolicy     = `SELECT body FROM policies WHERE key = $1`
	qDeletePolicy  = `DELETE FROM policies WHERE key = $1`
	// Scope containment as a key range in byte order (COLLATE "C"): IDs
	// below scope s lie in [s+"/", s+"0").
	qListPolicies = `SELECT body FROM policies
		WHERE ($1::text = '' OR key = $1 OR (key >= $2 AND key < $3)) AND ($4::text = '' OR location = $4)
		ORDER BY key`
	qPolicyForVM = `SELECT p.body FROM policy_vms v JOIN policies p ON p.key = v.policy_key WHERE v.vm_key = $1`

	qInsertRequest = `INSERT INTO requests (id, policy_key, start_time, body) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`
	qInsertGrant   = `INSERT INTO grants (id, request_id, idx, policy_key, vm_key, port, status, start_time, end_time, body)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING`
	// Only opened requests are listed (jit.Opened; migration 0002).
	qListRequests = `SELECT body FROM requests WHERE policy_key = $1
			AND (approval_state IS NULL OR approval_state = 'Approved')
		ORDER BY start_time DESC, id DESC LIMIT $2`
	qRequestGrants = `SELECT request_id, body FROM grants WHERE request_id IN (
			SELECT id FROM requests WHERE policy_key = $1 AND (approval_state IS NULL OR approval_state = 'Approved')
			ORDER BY start_time DESC, id DESC LIMIT $2)
		ORDER BY request_id, idx`
	qGetGrant    = `SELECT body FROM grants WHERE id = $1`
	qUpdateGrant = `UPDATE grants SET status = $1, body = $2 WHERE id = $3`
	// SKIP LOCKED: a grant another replica is expiring right now is left
	// to it; FOR UPDATE keeps the claim until this transaction ends.
	qDueGrants = `SELECT body FROM grants WHERE status = $1 AND end_time <= $2
		ORDER BY end_time, id LIMIT $3 FOR UPDATE SKIP LOCKED`
	// In a read-only transaction (which cannot lock rows) due grants are
	// only looked at: nothing is claimed.
	qDueGrantsReadOnly = `SELECT body FROM grants WHERE status = $1 AND end_time <= $2
		ORDER BY end_time, id LIMIT $3`
	qNextEndTime = `SELECT MIN(end_time) FROM grants WHERE status = $1`
)

// sqlLimit maps "0 or less means no limit" to LIMIT NULL.
func sqlLimit(n int) *int64 {
	if n <= 0 {
		return nil
	}
	v := int64(n)
	return &v
}

// Objects

func (t *tx) GetObject(ctx context.Context, kind, key string, into any) error {
	return t.getJSON(ctx, into, kind, key, qGetObject, kind, key)
}

func (t *tx) PutObject(ctx context.Context, kind, key string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("postgres: encode %s %q: %w", kind, key, err)
	}
	if _, err := t.exec(ctx, "put object", qPutObject, kind, key, body); err != nil {
		return fmt.Errorf("postgres: put %s %q: %w", kind, key, err)
	}
	return nil
}

func (t *tx) DeleteObject(ctx context.Context, kind, key string) error {
	if _, err := t.exec(ctx, "delete object", qDeleteObject, kind, key); err != nil {
		return fmt.Errorf("postgres: delete %s %q: %w", kind, key, err)
	}
	return nil
}

// ListObjects reads all rows before calling fn, so fn may use the
// transaction while listing.
// ListObjects reads all rows before calling fn, so fn may use the
// transaction while listing.
func (t *tx) ListObjects(ctx context.Context, kind string, fn func(key string, body []byte) error) error {
	return t.listObjects(ctx, kind, fn, qListObjects, kind)
}

// Policies

func (t *tx) PutPolicy(ctx context.Context, p jit.Policy) error {
	key, vmKeys, body, err := jitrows.EncodePolicy("postgres", p, func(vk string) (string, error) {
		var holder string
		err := t.queryRow(ctx, "put policy", qPolicyOfVM, []any{vk}, &holder)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", nil
		}
		return holder, err
	})
	if err != nil {
		return err
	}
	if _, err := t.exec(ctx, "put policy", qPutPolicy, key, strings.ToLower(p.Location), body); err != nil {
		return fmt.Errorf("postgres: put policy %s: %w", p.ID, err)
	}
	if err := t.notifyPolicyVMs(ctx, key); err != nil {
		return err
	}
	if _, err := t.exec(ctx, "put policy", qClearPolicyVM, key); err != nil {
		return fmt.Errorf("postgres: put policy %s: %w", p.ID, err)
	}
	for _, vk := range vmKeys {
		n, err := t.exec(ctx, "put policy", qAddPolicyVM, vk, key)
		if err != nil {
			return fmt.Errorf("postgres: put policy %s: index vm %s: %w", p.ID, vk, err)
		}
		if n == 0 {
			// Another transaction put the VM in its policy after our check.
			return fmt.Errorf("virtual machine %s is already in another JIT policy: %w", vk, store.ErrConflict)
		}
		if err := t.notifyVM(ctx, vk); err != nil {
			return err
		}
	}
	return nil
}

// notifyPolicyVMs announces every VM the stored policy key guards.
func (t *tx) notifyPolicyVMs(ctx context.Context, key string) error {
	if _, err := t.exec(ctx, "notify", `SELECT pg_notify($1, vm_key) FROM policy_vms WHERE policy_key = $2`, VMChannel, key); err != nil {
		return fmt.Errorf("postgres: notify policy %s: %w", key, err)
	}
	return nil
}

func (t *tx) GetPolicy(ctx context.Context, id string) (jit.Policy, error) {
	return getOne[jit.Policy](ctx, t, "JIT policy", id, qGetPolicy, strings.ToLower(id))
}

// DeletePolicy removes the policy and, by cascade, its VM index rows.
// Requests and grants stay: they are the history of access.
func (t *tx) DeletePolicy(ctx context.Context, id string) error {
	if err := t.notifyPolicyVMs(ctx, strings.ToLower(id)); err != nil {
		return err
	}
	n, err := t.exec(ctx, "delete policy", qDeletePolicy, strings.ToLower(id))
	if err != nil {
		return fmt.Errorf("postgres: delete policy %s: %w", id, err)
	}
	if n == 0 {
		return store.NotFound("JIT policy", id)
	}
	return nil
}

func (t *tx) ListPolicies(ctx context.Context, scope, location string) ([]jit.Policy, error) {
	s := strings.TrimSuffix(strings.ToLower(scope), "/")
	return queryAll[jit.Policy](ctx, t, "list policies", qListPolicies, s, s+"/", s+"0", strings.ToLower(location))
}

func (t *tx) PolicyForVM(ctx context.Context, vmID string) (jit.Policy, error) {
	return getOne[jit.Policy](ctx, t, "JIT policy for virtual machine", vmID, qPolicyForVM, inventory.Key(vmID))
}
