package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
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
	var body []byte
	err := t.queryRow(ctx, "get object", qGetObject, []any{kind, key}, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.NotFound(kind, key)
	} else if err != nil {
		return fmt.Errorf("postgres: get %s %q: %w", kind, key, err)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("postgres: decode %s %q: %w", kind, key, err)
	}
	return nil
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
func (t *tx) ListObjects(ctx context.Context, kind string, fn func(key string, body []byte) error) error {
	rows, err := t.query(ctx, "list objects", qListObjects, kind)
	if err != nil {
		return fmt.Errorf("postgres: list %s: %w", kind, err)
	}
	type kv struct {
		key  string
		body []byte
	}
	var all []kv
	for rows.Next() {
		var r kv
		if err := rows.Scan(&r.key, &r.body); err != nil {
			rows.Close()
			return fmt.Errorf("postgres: list %s: %w", kind, t.fail("list objects", err))
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: list %s: %w", kind, t.fail("list objects", err))
	}
	for _, r := range all {
		if err := fn(r.key, r.body); err != nil {
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
	if p.ID == "" {
		return errors.New("postgres: put policy: policy has no ID")
	}
	key := strings.ToLower(p.ID)
	vmKeys := make([]string, 0, len(p.VirtualMachines))
	for _, v := range p.DistinctVMs() {
		vk := inventory.Key(v.ID)
		var holder string
		err := t.queryRow(ctx, "put policy", qPolicyOfVM, []any{vk}, &holder)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("postgres: put policy %s: %w", p.ID, err)
		case holder != key:
			return fmt.Errorf("virtual machine %s is already in JIT policy %s: %w", v.ID, holder, store.ErrConflict)
		}
		vmKeys = append(vmKeys, vk)
	}
	body, err := json.Marshal(p.InUTC())
	if err != nil {
		return fmt.Errorf("postgres: encode policy %s: %w", p.ID, err)
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
	return t.onePolicy(ctx, qGetPolicy, strings.ToLower(id), "JIT policy", id)
}

func (t *tx) onePolicy(ctx context.Context, query, arg, what, id string) (jit.Policy, error) {
	var body []byte
	err := t.queryRow(ctx, "get policy", query, []any{arg}, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return jit.Policy{}, store.NotFound(what, id)
	} else if err != nil {
		return jit.Policy{}, fmt.Errorf("postgres: get %s %s: %w", what, id, err)
	}
	var p jit.Policy
	if err := json.Unmarshal(body, &p); err != nil {
		return jit.Policy{}, fmt.Errorf("postgres: decode policy: %w", err)
	}
	return p, nil
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
	rows, err := t.query(ctx, "list policies", qListPolicies, s, s+"/", s+"0", strings.ToLower(location))
	if err != nil {
		return nil, fmt.Errorf("postgres: list policies: %w", err)
	}
	return scanAll[jit.Policy](t, rows, "policies")
}

func (t *tx) PolicyForVM(ctx context.Context, vmID string) (jit.Policy, error) {
	return t.onePolicy(ctx, qPolicyForVM, inventory.Key(vmID), "JIT policy for virtual machine", vmID)
}

// scanAll decodes every row's single body column.
func scanAll[T any](t *tx, rows pgx.Rows, what string) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("postgres: list %s: %w", what, t.fail("list "+what, err))
		}
		var v T
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, fmt.Errorf("postgres: decode %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list %s: %w", what, t.fail("list "+what, err))
	}
	return out, nil
}

// Requests and grants

// InsertRequest stores the request row and one row per grant. A duplicate
// ID is ErrConflict (ON CONFLICT DO NOTHING, so the transaction is not
// aborted by a unique violation).
func (t *tx) InsertRequest(ctx context.Context, r jit.Request) error {
	if r.ID == "" {
		return errors.New("postgres: insert request: request has no ID")
	}
	grants := r.Grants
	r.Grants = nil
	r.StartTime = r.StartTime.UTC()
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("postgres: encode request %s: %w", r.ID, err)
	}
	n, err := t.exec(ctx, "insert request", qInsertRequest, r.ID, strings.ToLower(r.PolicyID), r.StartTime.UnixNano(), body)
	if err != nil {
		return fmt.Errorf("postgres: insert request %s: %w", r.ID, err)
	} else if n == 0 {
		return fmt.Errorf("request %s already exists: %w", r.ID, store.ErrConflict)
	}
	notified := map[string]bool{}
	for i, g := range grants {
		g = g.InUTC()
		g.RequestID = r.ID
		if g.PolicyID == "" {
			g.PolicyID = r.PolicyID
		}
		if g.ID == "" || g.EndTime.IsZero() {
			return fmt.Errorf("postgres: insert request %s: grant %d has no ID or no end time", r.ID, i)
		}
		body, err := json.Marshal(g)
		if err != nil {
			return fmt.Errorf("postgres: encode grant %s: %w", g.ID, err)
		}
		n, err := t.exec(ctx, "insert grant", qInsertGrant, g.ID, r.ID, i, strings.ToLower(g.PolicyID), inventory.Key(g.VMID), g.Port,
			string(g.Status), g.StartTime.UnixNano(), g.EndTime.UnixNano(), body)
		if err != nil {
			return fmt.Errorf("postgres: insert grant %s: %w", g.ID, err)
		} else if n == 0 {
			return fmt.Errorf("grant %s already exists: %w", g.ID, store.ErrConflict)
		}
		if vk := inventory.Key(g.VMID); !notified[vk] {
			notified[vk] = true
			if err := t.notifyVM(ctx, vk); err != nil {
				return fmt.Errorf("postgres: insert request %s: %w", r.ID, err)
			}
		}
	}
	return nil
}

func (t *tx) ListRequests(ctx context.Context, policyID string, limit int) ([]jit.Request, error) {
	key, lim := strings.ToLower(policyID), sqlLimit(limit)
	rows, err := t.query(ctx, "list requests", qListRequests, key, lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: list requests: %w", err)
	}
	reqs, err := scanAll[jit.Request](t, rows, "requests")
	if err != nil || len(reqs) == 0 {
		return reqs, err
	}
	byID := make(map[string]int, len(reqs))
	for i := range reqs {
		byID[reqs[i].ID] = i
		reqs[i].Grants = []jit.Grant{}
	}
	grows, err := t.query(ctx, "list request grants", qRequestGrants, key, lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: list request grants: %w", err)
	}
	defer grows.Close()
	for grows.Next() {
		var reqID string
		var body []byte
		if err := grows.Scan(&reqID, &body); err != nil {
			return nil, fmt.Errorf("postgres: list request grants: %w", t.fail("list request grants", err))
		}
		var g jit.Grant
		if err := json.Unmarshal(body, &g); err != nil {
			return nil, fmt.Errorf("postgres: decode grant: %w", err)
		}
		if i, ok := byID[reqID]; ok {
			reqs[i].Grants = append(reqs[i].Grants, g)
		}
	}
	if err := grows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list request grants: %w", t.fail("list request grants", err))
	}
	return reqs, nil
}

func (t *tx) GetGrant(ctx context.Context, id string) (jit.Grant, error) {
	var body []byte
	err := t.queryRow(ctx, "get grant", qGetGrant, []any{id}, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return jit.Grant{}, store.NotFound("grant", id)
	} else if err != nil {
		return jit.Grant{}, fmt.Errorf("postgres: get grant %s: %w", id, err)
	}
	var g jit.Grant
	if err := json.Unmarshal(body, &g); err != nil {
		return jit.Grant{}, fmt.Errorf("postgres: decode grant %s: %w", id, err)
	}
	return g, nil
}

func (t *tx) ListGrants(ctx context.Context, f jit.GrantFilter) ([]jit.Grant, error) {
	var where []string
	var args []any
	arg := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.VMID != "" {
		arg("vm_key = $%d", inventory.Key(f.VMID))
	}
	if f.PolicyID != "" {
		arg("policy_key = $%d", strings.ToLower(f.PolicyID))
	}
	if f.Port != 0 {
		arg("port = $%d", f.Port)
	}
	if f.ActiveOnly {
		arg("status = $%d", string(jit.StatusInitiated))
	}
	q := "SELECT body FROM grants"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, sqlLimit(f.Limit))
	q += fmt.Sprintf(" ORDER BY start_time DESC, request_id DESC, idx LIMIT $%d", len(args))
	rows, err := t.query(ctx, "list grants", q, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list grants: %w", err)
	}
	return scanAll[jit.Grant](t, rows, "grants")
}

// UpdateGrant copies only the mutable fields onto the stored grant.
func (t *tx) UpdateGrant(ctx context.Context, g jit.Grant) error {
	cur, err := t.GetGrant(ctx, g.ID)
	if err != nil {
		return err
	}
	// Only a status change (a grant ending) changes the VM's desired
	// firewall; bookkeeping (applied, provider error) is not announced, so
	// replicas reacting to notifications cannot set each other off.
	statusChanged, wasPending := cur.Status != g.Status, cur.Status == jit.StatusPending
	cur = cur.WithStateOf(g)
	body, err := json.Marshal(cur)
	if err != nil {
		return fmt.Errorf("postgres: encode grant %s: %w", g.ID, err)
	}
	if wasPending { // its window may change too (approval.go)
		_, err = t.exec(ctx, "update grant", qUpdatePendingGrant, string(cur.Status), cur.StartTime.UnixNano(), cur.EndTime.UnixNano(), body, g.ID)
	} else {
		_, err = t.exec(ctx, "update grant", qUpdateGrant, string(cur.Status), body, g.ID)
	}
	if err != nil {
		return fmt.Errorf("postgres: update grant %s: %w", g.ID, err)
	}
	if statusChanged {
		return t.notifyVM(ctx, inventory.Key(cur.VMID))
	}
	return nil
}

// DueGrants returns, and claims until this transaction ends, Initiated
// grants whose end time is at or before now that no other transaction has
// claimed.
func (t *tx) DueGrants(ctx context.Context, now time.Time, limit int) ([]jit.Grant, error) {
	q := qDueGrants
	if t.readOnly {
		q = qDueGrantsReadOnly
	}
	rows, err := t.query(ctx, "due grants", q, string(jit.StatusInitiated), now.UnixNano(), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: due grants: %w", err)
	}
	return scanAll[jit.Grant](t, rows, "grants")
}

func (t *tx) NextEndTime(ctx context.Context) (time.Time, bool, error) {
	var n *int64
	if err := t.queryRow(ctx, "next end time", qNextEndTime, []any{string(jit.StatusInitiated)}, &n); err != nil {
		return time.Time{}, false, fmt.Errorf("postgres: next end time: %w", err)
	}
	if n == nil {
		return time.Time{}, false, nil
	}
	return time.Unix(0, *n).UTC(), true, nil
}
