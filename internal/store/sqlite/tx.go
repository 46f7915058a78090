package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/jsonmemo"
	"github.com/drawbridge/drawbridge/internal/store"
)

// tx is one transaction; it is valid only inside the function given to InTx.
type tx struct {
	tx *sql.Tx
	// stmts are the prepared statements of tx's connection pool: the
	// writer's, or the read pool's for ReadTx.
	stmts map[string]*sql.Stmt
	// bound are statements of stmts already bound to tx (nil: bind every
	// time); a group commit's transactions share them.
	bound map[string]*sql.Stmt
	// cache is the writer's row cache (cache.go); nil for read-pool
	// transactions, which see a snapshot of their own.
	cache *rowCache
	// memo is the store's decode memo (exact by content, so shared by the
	// writer and the read pool).
	memo *jsonmemo.Memo
	// wrote is set before tx runs its first statement that is not a
	// SELECT: from then on a failure must be undone (runOptimistic).
	wrote bool
	// headDirty, if set, defers writing the audit log's head: the head
	// goes only to the writer's cache and *headDirty is set, and the batch
	// writes it once, before committing (runOptimistic). nil: written at
	// once.
	headDirty *bool
	tune      tuning
}

var (
	_ jit.Tx                 = (*tx)(nil)
	_ auditstore.RecordTable = (*tx)(nil)
	_ store.RawObjects       = (*tx)(nil)
)

const (
	qGetObject    = `SELECT body FROM objects WHERE kind = ? AND key = ?`
	qPutObject    = `INSERT INTO objects (kind, key, body) VALUES (?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body`
	qDeleteObject = `DELETE FROM objects WHERE kind = ? AND key = ?`
	qListObjects  = `SELECT key, body FROM objects WHERE kind = ? ORDER BY key`

	qPolicyOfVM    = `SELECT policy_key FROM policy_vms WHERE vm_key = ?`
	qPutPolicy     = `INSERT INTO policies (key, location, body) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET location = excluded.location, body = excluded.body`
	qClearPolicyVM = `DELETE FROM policy_vms WHERE policy_key = ?`
	qAddPolicyVM   = `INSERT INTO policy_vms (vm_key, policy_key) VALUES (?, ?)`
	qGetPolicy     = `SELECT body FROM policies WHERE key = ?`
	qDeletePolicy  = `DELETE FROM policies WHERE key = ?`
	// Scope containment as a key range: IDs below scope s start with s+"/",
	// i.e. lie in [s+"/", s+"0") because '0' is the byte after '/'. This
	// uses the primary key index and stops at segment boundaries, so
	// /subscriptions/s1 does not contain /subscriptions/s10.
	qListPolicies = `SELECT body FROM policies
		WHERE (?1 = '' OR key = ?1 OR (key >= ?2 AND key < ?3)) AND (?4 = '' OR location = ?4)
		ORDER BY key`
	qPolicyForVM = `SELECT p.body FROM policy_vms v JOIN policies p ON p.key = v.policy_key WHERE v.vm_key = ?`

	qInsertRequest = `INSERT INTO requests (id, policy_ref, start_time, body) VALUES (?, ?, ?, ?)`
	qInsertGrant   = `INSERT INTO grants (id, request_id, idx, policy_ref, vm_ref, port, status, start_time, end_time, body)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// Policies and VMs are found in the indexes by their id in key_ids
	// (migration 0006); an unknown key's is NULL, which matches no row.
	qListRequests = `SELECT body FROM requests WHERE policy_ref = (SELECT id FROM key_ids WHERE key = ?1)
		ORDER BY start_time DESC, id DESC LIMIT ?2`
	qRequestGrants = `SELECT request_id, body FROM grants WHERE request_id IN (
			SELECT id FROM requests WHERE policy_ref = (SELECT id FROM key_ids WHERE key = ?1)
			ORDER BY start_time DESC, id DESC LIMIT ?2)
		ORDER BY request_id, idx`
	qKeyID    = `SELECT id FROM key_ids WHERE key = ?`
	qAddKeyID = `INSERT INTO key_ids (key) VALUES (?)`
	qGetGrant = `SELECT body FROM grants WHERE id = ?`
	// The writer's cache of a VM's active grants is filled from this
	// query; its order is listGrantsQuery's.
	qActiveGrantsOfVM = `SELECT id, request_id, idx, start_time, body FROM grants
		WHERE vm_ref = (SELECT id FROM key_ids WHERE key = ?) AND status = 'Initiated'
		ORDER BY start_time DESC, request_id DESC, idx`
	qUpdateGrant = `UPDATE grants SET status = ?, body = ? WHERE id = ?`
	qDueGrants   = `SELECT body FROM grants WHERE status = 'Initiated' AND end_time <= ?
		ORDER BY end_time, id LIMIT ?`
	qNextEndTime = `SELECT MIN(end_time) FROM grants WHERE status = 'Initiated'`

	qAppendAudit  = `INSERT INTO audit_records (seq, body) VALUES (?, ?)`
	qAppendAudit2 = `INSERT INTO audit_records (seq, body) VALUES (?, ?), (?, ?)`
	qAuditHead    = `SELECT seq, hash FROM audit_head WHERE id = 1`
	qSetHead      = `INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash`
	qListAudit    = `SELECT seq, body FROM audit_records ORDER BY seq`

	qDataVersion = `PRAGMA data_version`
	// A group commit run again after a failure runs each transaction
	// inside this savepoint (sqlite.go, runWithSavepoints); prepared once
	// like every other statement.
	qSavepoint = `SAVEPOINT job`
	qRelease   = `RELEASE job`
)

// encodeRow encodes a request or grant row's body: the canonical JSON the
// type writes itself (the audit log's encoding, sorted keys) where it can,
// else json.Marshal's. Either decodes to the same value; the first skips
// reflection on every request.
func (t *tx) encodeRow(v audit.CanonicalEncoder) ([]byte, error) {
	if t.tune.noCanonicalRows {
		return json.Marshal(v)
	}
	if b, ok := v.AppendCanonicalJSON(make([]byte, 0, 768)); ok {
		return b, nil
	}
	return json.Marshal(v)
}

// listGrantsQuery builds the ListGrants query for one combination of
// filters; only present filters appear, so SQLite can pick the matching
// index. Arguments follow in the order vm, policy, port, limit.
func listGrantsQuery(vm, policy, port, active bool) string {
	var where []string
	if vm {
		where = append(where, "vm_ref = (SELECT id FROM key_ids WHERE key = ?)")
	}
	if policy {
		where = append(where, "policy_ref = (SELECT id FROM key_ids WHERE key = ?)")
	}
	if port {
		where = append(where, "port = ?")
	}
	if active {
		// A literal, not a parameter, so that SQLite can use the
		// partial indexes over active grants (migrations 0004, 0006).
		where = append(where, "status = 'Initiated'")
	}
	q := "SELECT body FROM grants"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	return q + " ORDER BY start_time DESC, request_id DESC, idx LIMIT ?"
}

func allQueries() []string {
	qs := []string{
		qGetObject, qPutObject, qDeleteObject, qListObjects,
		qPolicyOfVM, qPutPolicy, qClearPolicyVM, qAddPolicyVM, qGetPolicy, qDeletePolicy, qListPolicies, qPolicyForVM,
		qInsertRequest, qInsertGrant, qListRequests, qRequestGrants, qKeyID, qAddKeyID, qGetGrant, qActiveGrantsOfVM, qUpdateGrant, qDueGrants, qNextEndTime,
		qAppendAudit, qAppendAudit2, qListAudit, qAuditHead, qSetHead, qDataVersion, qSavepoint, qRelease,
	}
	for i := range 16 {
		qs = append(qs, listGrantsQuery(i&1 != 0, i&2 != 0, i&4 != 0, i&8 != 0))
	}
	return qs
}

// sqlLimit maps "0 or less means no limit" to SQLite's LIMIT -1.
func sqlLimit(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// Objects

// GetObjectRaw returns the stored JSON of an object.
// The caller must not modify the returned bytes.
func (t *tx) GetObjectRaw(ctx context.Context, kind, key string) ([]byte, error) {
	if r, ok := t.cache.get(tableObjects, kind, key); ok {
		if !r.present {
			return nil, store.NotFound(kind, key)
		}
		return r.body, nil
	}
	var body []byte
	err := t.stmt(qGetObject).QueryRowContext(noCancel, kind, key).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		t.cache.absent(tableObjects, kind, key)
		return nil, store.NotFound(kind, key)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: get %s %q: %w", kind, key, err)
	}
	t.cache.put(tableObjects, kind, key, body)
	return body, nil
}

func (t *tx) GetObject(ctx context.Context, kind, key string, into any) error {
	body, err := t.GetObjectRaw(ctx, kind, key)
	if err != nil {
		return err
	}
	// Objects read again unchanged (a VM, the audit head) skip decoding.
	if err := t.memo.DecodeInto(body, into); err != nil {
		return fmt.Errorf("sqlite: decode %s %q: %w", kind, key, err)
	}
	return nil
}

func (t *tx) PutObject(ctx context.Context, kind, key string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("sqlite: encode %s %q: %w", kind, key, err)
	}
	return t.putObject(kind, key, body)
}

// PutObjectRaw stores body as the object's stored form; GetObjectRaw
// returns exactly these bytes. body's bytes must not be modified
// afterwards.
// Memo returns the store's decode memo, for callers of GetObjectRaw.
func (t *tx) Memo() *jsonmemo.Memo { return t.memo }

func (t *tx) PutObjectRaw(ctx context.Context, kind, key string, body store.EncodedJSON) error {
	return t.putObject(kind, key, body.Bytes())
}

// putObject stores body, which is valid JSON, unchecked.
func (t *tx) putObject(kind, key string, body []byte) error {
	if _, err := t.stmt(qPutObject).ExecContext(noCancel, kind, key, body); err != nil {
		return fmt.Errorf("sqlite: put %s %q: %w", kind, key, err)
	}
	t.cache.put(tableObjects, kind, key, body)
	return nil
}

func (t *tx) DeleteObject(ctx context.Context, kind, key string) error {
	if _, err := t.stmt(qDeleteObject).ExecContext(noCancel, kind, key); err != nil {
		return fmt.Errorf("sqlite: delete %s %q: %w", kind, key, err)
	}
	t.cache.absent(tableObjects, kind, key)
	return nil
}

// ListObjects reads all rows before calling fn, so fn may use the
// transaction (even change objects of the same kind) while listing.
func (t *tx) ListObjects(ctx context.Context, kind string, fn func(key string, body []byte) error) error {
	rows, err := t.stmt(qListObjects).QueryContext(noCancel, kind)
	if err != nil {
		return fmt.Errorf("sqlite: list %s: %w", kind, err)
	}
	return readAllThen(rows, "list "+kind, fn)
}

// readAllThen scans every (key, body) row, closes rows, and only then calls
// fn for each: fn may use the transaction, which a statement still
// stepping through rows would get in the way of.
func readAllThen[K any](rows *sql.Rows, what string, fn func(key K, body []byte) error) error {
	type row struct {
		key  K
		body []byte
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.key, &r.body); err != nil {
			rows.Close()
			return fmt.Errorf("sqlite: %s: %w", what, err)
		}
		all = append(all, r)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
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
		return errors.New("sqlite: put policy: policy has no ID")
	}
	key := strings.ToLower(p.ID)
	// Check every VM before writing anything, so a conflict leaves the
	// stored policy as it was even if the caller commits regardless.
	vmKeys := make([]string, 0, len(p.VirtualMachines))
	for _, v := range p.DistinctVMs() {
		vk := inventory.Key(v.ID)
		var holder string
		err := t.stmt(qPolicyOfVM).QueryRowContext(noCancel, vk).Scan(&holder)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("sqlite: put policy %s: %w", p.ID, err)
		case holder != key:
			return fmt.Errorf("virtual machine %s is already in JIT policy %s: %w", v.ID, holder, store.ErrConflict)
		}
		vmKeys = append(vmKeys, vk)
	}
	body, err := json.Marshal(p.InUTC())
	if err != nil {
		return fmt.Errorf("sqlite: encode policy %s: %w", p.ID, err)
	}
	if _, err := t.stmt(qPutPolicy).ExecContext(noCancel, key, strings.ToLower(p.Location), body); err != nil {
		return fmt.Errorf("sqlite: put policy %s: %w", p.ID, err)
	}
	t.cache.put(tablePolicies, "", key, body)
	t.cache.policiesChanged()
	if _, err := t.stmt(qClearPolicyVM).ExecContext(noCancel, key); err != nil {
		return fmt.Errorf("sqlite: put policy %s: %w", p.ID, err)
	}
	for _, vk := range vmKeys {
		if _, err := t.stmt(qAddPolicyVM).ExecContext(noCancel, vk, key); err != nil {
			return fmt.Errorf("sqlite: put policy %s: index vm %s: %w", p.ID, vk, err)
		}
	}
	return nil
}

func (t *tx) GetPolicy(ctx context.Context, id string) (jit.Policy, error) {
	key := strings.ToLower(id)
	if r, ok := t.cache.get(tablePolicies, "", key); ok {
		if !r.present {
			return jit.Policy{}, store.NotFound("JIT policy", id)
		}
		return t.decodePolicy(r.body)
	}
	p, body, err := t.onePolicy(ctx, qGetPolicy, key, "JIT policy", id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		t.cache.absent(tablePolicies, "", key)
	case err == nil:
		t.cache.put(tablePolicies, "", key, body)
	}
	return p, err
}

func (t *tx) decodePolicy(body []byte) (jit.Policy, error) {
	p, err := decodeRow[jit.Policy](t.memo)(body)
	if err != nil {
		return jit.Policy{}, fmt.Errorf("sqlite: decode policy: %w", err)
	}
	return p, nil
}

// onePolicy runs a query selecting one policy body and decodes it; it also
// returns the body as stored.
func (t *tx) onePolicy(ctx context.Context, query, arg, what, id string) (jit.Policy, []byte, error) {
	var body []byte
	err := t.stmt(query).QueryRowContext(noCancel, arg).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return jit.Policy{}, nil, store.NotFound(what, id)
	} else if err != nil {
		return jit.Policy{}, nil, fmt.Errorf("sqlite: get %s %s: %w", what, id, err)
	}
	p, err := t.decodePolicy(body)
	return p, body, err
}

// DeletePolicy removes the policy and, by cascade, its VM index rows.
// Requests and grants stay: they are the history of access.
func (t *tx) DeletePolicy(ctx context.Context, id string) error {
	res, err := t.stmt(qDeletePolicy).ExecContext(noCancel, strings.ToLower(id))
	if err != nil {
		return fmt.Errorf("sqlite: delete policy %s: %w", id, err)
	}
	t.cache.absent(tablePolicies, "", strings.ToLower(id))
	t.cache.policiesChanged()
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: delete policy %s: %w", id, err)
	} else if n == 0 {
		return store.NotFound("JIT policy", id)
	}
	return nil
}

func (t *tx) ListPolicies(ctx context.Context, scope, location string) ([]jit.Policy, error) {
	s := strings.TrimSuffix(strings.ToLower(scope), "/")
	rows, err := t.stmt(qListPolicies).QueryContext(noCancel, s, s+"/", s+"0", strings.ToLower(location))
	if err != nil {
		return nil, fmt.Errorf("sqlite: list policies: %w", err)
	}
	return scanAll(rows, "policies", decodeRow[jit.Policy](t.memo))
}

func (t *tx) PolicyForVM(ctx context.Context, vmID string) (jit.Policy, error) {
	vk := inventory.Key(vmID)
	if t.cache == nil {
		p, _, err := t.onePolicy(ctx, qPolicyForVM, vk, "JIT policy for virtual machine", vmID)
		return p, err
	}
	// The writer looks the policy's key up (cached), then the policy
	// (cached too): every request through InitiateForVM does this.
	key, ok := t.cache.policyOfVM(vk)
	if !ok {
		err := t.stmt(qPolicyOfVM).QueryRowContext(noCancel, vk).Scan(&key)
		if errors.Is(err, sql.ErrNoRows) {
			key = ""
		} else if err != nil {
			return jit.Policy{}, fmt.Errorf("sqlite: get JIT policy for virtual machine %s: %w", vmID, err)
		}
		t.cache.setPolicyOfVM(vk, key)
	}
	if key == "" {
		return jit.Policy{}, store.NotFound("JIT policy for virtual machine", vmID)
	}
	return t.GetPolicy(ctx, key)
}

// scanAll decodes every row's single body column.
func scanAll[T any](rows *sql.Rows, what string, decode func([]byte) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("sqlite: list %s: %w", what, err)
		}
		v, err := decode(body)
		if err != nil {
			return nil, fmt.Errorf("sqlite: decode %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list %s: %w", what, err)
	}
	return out, nil
}

// decodeRow decodes a row's body through jsonmemo, which remembers values
// by their bytes: the policy and the grants every request reads again
// unchanged (and the grants the writer just stored, which it remembers)
// skip encoding/json.
func decodeRow[T any](m *jsonmemo.Memo) func(body []byte) (T, error) {
	return func(body []byte) (T, error) {
		var v T
		_, err := jsonmemo.Decode(m, body, &v)
		return v, err
	}
}

// decodeJSON decodes without the memo: request bodies are listed now and
// then, each once, and would only crowd out what is read again.
func decodeJSON[T any](body []byte) (T, error) {
	var v T
	err := json.Unmarshal(body, &v)
	return v, err
}

// Audit records (auditstore.RecordTable)

// AppendAuditRecords stores bodies as audit records first, first+1, …, two
// to a statement (a request appends two: the grant it supersedes ends, and
// the request); a taken seq is a conflict (two writers chaining onto the
// same head).
func (t *tx) AppendAuditRecords(ctx context.Context, first int64, bodies [][]byte) error {
	for i := 0; i < len(bodies); {
		seq := first + int64(i)
		var err error
		if len(bodies)-i >= 2 {
			_, err = t.stmt(qAppendAudit2).ExecContext(noCancel, seq, bodies[i], seq+1, bodies[i+1])
			i += 2
		} else {
			_, err = t.stmt(qAppendAudit).ExecContext(noCancel, seq, bodies[i])
			i++
		}
		if isConstraint(err) {
			return fmt.Errorf("audit record %d already exists: %w", seq, store.ErrConflict)
		} else if err != nil {
			return fmt.Errorf("sqlite: append audit record %d: %w", seq, err)
		}
	}
	return nil
}

// AuditHead returns the audit log's head (zero if none), from the writer's
// cache when it has it.
func (t *tx) AuditHead(ctx context.Context) (int64, string, error) {
	if h, ok := t.cache.auditHead(); ok {
		return h.seq, h.hash, nil
	}
	var h cachedHead
	err := t.stmt(qAuditHead).QueryRowContext(noCancel).Scan(&h.seq, &h.hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, "", fmt.Errorf("sqlite: read audit head: %w", err)
	}
	t.cache.setAuditHead(h)
	return h.seq, h.hash, nil
}

// SetAuditHead replaces the audit log's head. In a batch that defers it
// (t.headDirty), the batch writes it once before committing: every
// audited change would otherwise rewrite the same row.
func (t *tx) SetAuditHead(ctx context.Context, seq int64, hash string) error {
	if t.headDirty != nil {
		t.wrote = true // the head is written for it; undoing it means a rollback
		t.cache.setAuditHead(cachedHead{seq: seq, hash: hash})
		*t.headDirty = true
		return nil
	}
	if _, err := t.stmt(qSetHead).ExecContext(noCancel, seq, hash); err != nil {
		return fmt.Errorf("sqlite: write audit head: %w", err)
	}
	t.cache.setAuditHead(cachedHead{seq: seq, hash: hash})
	return nil
}

// ListAuditRecords reads all records before calling fn, like ListObjects.
func (t *tx) ListAuditRecords(ctx context.Context, fn func(seq int64, body []byte) error) error {
	rows, err := t.stmt(qListAudit).QueryContext(noCancel)
	if err != nil {
		return fmt.Errorf("sqlite: list audit records: %w", err)
	}
	return readAllThen(rows, "list audit records", fn)
}

// Requests and grants

// InsertRequest stores the request row (without grants, which live in their
// own rows and change over time) and one row per grant.
func (t *tx) InsertRequest(ctx context.Context, r jit.Request) error {
	if r.ID == "" {
		return errors.New("sqlite: insert request: request has no ID")
	}
	grants := r.Grants
	r.Grants = nil
	r.StartTime = r.StartTime.UTC()
	body, err := t.encodeRow(r)
	if err != nil {
		return fmt.Errorf("sqlite: encode request %s: %w", r.ID, err)
	}
	policyKey := strings.ToLower(r.PolicyID)
	policyRef, err := t.keyID(policyKey)
	if err != nil {
		return err
	}
	_, err = t.stmt(qInsertRequest).ExecContext(noCancel, r.ID, policyRef, r.StartTime.UnixNano(), body)
	if isConstraint(err) {
		return fmt.Errorf("request %s already exists: %w", r.ID, store.ErrConflict)
	} else if err != nil {
		return fmt.Errorf("sqlite: insert request %s: %w", r.ID, err)
	}
	ins := t.stmt(qInsertGrant)
	for i, g := range grants {
		g = g.InUTC()
		g.RequestID = r.ID
		if g.PolicyID == "" {
			g.PolicyID = r.PolicyID
		}
		if g.ID == "" || g.EndTime.IsZero() {
			return fmt.Errorf("sqlite: insert request %s: grant %d has no ID or no end time", r.ID, i)
		}
		body, err := t.encodeRow(g)
		if err != nil {
			return fmt.Errorf("sqlite: encode grant %s: %w", g.ID, err)
		}
		grantPolicyRef := policyRef
		if gk := strings.ToLower(g.PolicyID); gk != policyKey {
			if grantPolicyRef, err = t.keyID(gk); err != nil {
				return err
			}
		}
		vmKey := inventory.Key(g.VMID)
		vmRef, err := t.keyID(vmKey)
		if err != nil {
			return err
		}
		_, err = ins.ExecContext(noCancel, g.ID, r.ID, i, grantPolicyRef, vmRef, g.Port,
			string(g.Status), g.StartTime.UnixNano(), g.EndTime.UnixNano(), body)
		if isConstraint(err) {
			return fmt.Errorf("grant %s already exists: %w", g.ID, store.ErrConflict)
		} else if err != nil {
			return fmt.Errorf("sqlite: insert grant %s: %w", g.ID, err)
		}
		t.cache.put(tableGrants, "", g.ID, body)
		t.memo.Remember(body, &g)
		if g.Status == jit.StatusInitiated {
			t.cache.grantActivated(vmKey, activeRef{id: g.ID, start: g.StartTime.UnixNano(), requestID: r.ID, idx: i, grant: g})
		}
	}
	return nil
}

// keyID returns the integer that stands for key (a policy's or VM's
// lower-cased ID) in the indexes, giving key one if it has none. Writer
// only: it may write.
func (t *tx) keyID(key string) (int64, error) {
	if id, ok := t.cache.keyID(key); ok && !t.tune.noKeyIDCache {
		return id, nil
	}
	var id int64
	err := t.stmt(qKeyID).QueryRowContext(noCancel, key).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		var res sql.Result
		if res, err = t.stmt(qAddKeyID).ExecContext(noCancel, key); err == nil {
			id, err = res.LastInsertId()
		}
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: id of key %q: %w", key, err)
	}
	t.cache.setKeyID(key, id)
	return id, nil
}

func (t *tx) ListRequests(ctx context.Context, policyID string, limit int) ([]jit.Request, error) {
	key, lim := strings.ToLower(policyID), sqlLimit(limit)
	rows, err := t.stmt(qListRequests).QueryContext(noCancel, key, lim)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list requests: %w", err)
	}
	reqs, err := scanAll(rows, "requests", decodeJSON[jit.Request])
	if err != nil || len(reqs) == 0 {
		return reqs, err
	}
	byID := make(map[string]int, len(reqs))
	for i := range reqs {
		byID[reqs[i].ID] = i
		reqs[i].Grants = []jit.Grant{}
	}
	// One query for all the requests' grants rather than one per request.
	grows, err := t.stmt(qRequestGrants).QueryContext(noCancel, key, lim)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list request grants: %w", err)
	}
	defer grows.Close()
	for grows.Next() {
		var reqID string
		var body []byte
		if err := grows.Scan(&reqID, &body); err != nil {
			return nil, fmt.Errorf("sqlite: list request grants: %w", err)
		}
		var g jit.Grant
		if err := json.Unmarshal(body, &g); err != nil {
			return nil, fmt.Errorf("sqlite: decode grant: %w", err)
		}
		if i, ok := byID[reqID]; ok {
			reqs[i].Grants = append(reqs[i].Grants, g)
		}
	}
	if err := grows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list request grants: %w", err)
	}
	return reqs, nil
}

func (t *tx) GetGrant(ctx context.Context, id string) (jit.Grant, error) {
	body, err := t.grantBody(id)
	if err != nil {
		return jit.Grant{}, err
	}
	g, err := decodeRow[jit.Grant](t.memo)(body)
	if err != nil {
		return jit.Grant{}, fmt.Errorf("sqlite: decode grant %s: %w", id, err)
	}
	return g, nil
}

func (t *tx) ListGrants(ctx context.Context, f jit.GrantFilter) ([]jit.Grant, error) {
	if t.cache != nil && !t.tune.noActiveCache && f.VMID != "" && f.ActiveOnly && f.PolicyID == "" && f.Port == 0 && f.Limit <= 0 {
		// A VM's active grants: every request reads them, to supersede
		// and to compute the VM's firewall.
		return t.activeGrantsOfVM(inventory.Key(f.VMID))
	}
	var args []any
	if f.VMID != "" {
		args = append(args, inventory.Key(f.VMID))
	}
	if f.PolicyID != "" {
		args = append(args, strings.ToLower(f.PolicyID))
	}
	if f.Port != 0 {
		args = append(args, f.Port)
	}
	args = append(args, sqlLimit(f.Limit))
	q := listGrantsQuery(f.VMID != "", f.PolicyID != "", f.Port != 0, f.ActiveOnly)
	rows, err := t.stmt(q).QueryContext(noCancel, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list grants: %w", err)
	}
	return scanAll(rows, "grants", decodeRow[jit.Grant](t.memo))
}

// activeGrantsOfVM is ListGrants of a VM's active grants on the writer,
// from its cache when it has them.
func (t *tx) activeGrantsOfVM(vmKey string) ([]jit.Grant, error) {
	if refs, ok := t.cache.activeGrants(vmKey); ok {
		out := make([]jit.Grant, len(refs))
		for i, r := range refs {
			out[i] = r.grant
		}
		return out, nil
	}
	rows, err := t.stmt(qActiveGrantsOfVM).QueryContext(noCancel, vmKey)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list grants: %w", err)
	}
	defer rows.Close()
	refs := []activeRef{}
	var out []jit.Grant
	for rows.Next() {
		var r activeRef
		var body []byte
		if err := rows.Scan(&r.id, &r.requestID, &r.idx, &r.start, &body); err != nil {
			return nil, fmt.Errorf("sqlite: list grants: %w", err)
		}
		g, err := decodeRow[jit.Grant](t.memo)(body)
		if err != nil {
			return nil, fmt.Errorf("sqlite: decode grant %s: %w", r.id, err)
		}
		t.cache.put(tableGrants, "", r.id, body)
		r.grant = g
		refs = append(refs, r)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list grants: %w", err)
	}
	t.cache.setActiveGrants(vmKey, refs)
	return out, nil
}

// grantBody returns a grant's stored body, from the writer's cache if it has it.
func (t *tx) grantBody(id string) ([]byte, error) {
	if r, ok := t.cache.get(tableGrants, "", id); ok {
		if !r.present {
			return nil, store.NotFound("grant", id)
		}
		return r.body, nil
	}
	var body []byte
	err := t.stmt(qGetGrant).QueryRowContext(noCancel, id).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		t.cache.absent(tableGrants, "", id)
		return nil, store.NotFound("grant", id)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: get grant %s: %w", id, err)
	}
	t.cache.put(tableGrants, "", id, body)
	return body, nil
}

// UpdateGrant copies only the mutable fields onto the stored grant, so a
// caller holding a stale or partial Grant cannot rewrite its identity,
// port, source or end time.
func (t *tx) UpdateGrant(ctx context.Context, g jit.Grant) error {
	cur, err := t.GetGrant(ctx, g.ID)
	if err != nil {
		return err
	}
	wasActive := cur.Status == jit.StatusInitiated
	cur = cur.WithStateOf(g).InUTC()
	body, err := t.encodeRow(cur)
	if err != nil {
		return fmt.Errorf("sqlite: encode grant %s: %w", g.ID, err)
	}
	if _, err := t.stmt(qUpdateGrant).ExecContext(noCancel, string(cur.Status), body, g.ID); err != nil {
		return fmt.Errorf("sqlite: update grant %s: %w", g.ID, err)
	}
	t.cache.put(tableGrants, "", g.ID, body)
	isActive := cur.Status == jit.StatusInitiated
	if isActive {
		// The writer reads an active grant again (a newer request ends
		// it); an ended one only the listings do, which can decode it.
		t.memo.Remember(body, &cur)
	}
	switch {
	case wasActive && isActive:
		t.cache.grantChanged(inventory.Key(cur.VMID), cur)
	case wasActive && !isActive:
		t.cache.grantEnded(inventory.Key(cur.VMID), cur.ID)
	case !wasActive && isActive:
		// Its position (the request's idx) is not at hand here.
		t.cache.forgetActive(inventory.Key(cur.VMID))
	}
	return nil
}

func (t *tx) DueGrants(ctx context.Context, now time.Time, limit int) ([]jit.Grant, error) {
	rows, err := t.stmt(qDueGrants).QueryContext(noCancel, now.UnixNano(), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("sqlite: due grants: %w", err)
	}
	return scanAll(rows, "grants", decodeRow[jit.Grant](t.memo))
}

func (t *tx) NextEndTime(ctx context.Context) (time.Time, bool, error) {
	var n sql.NullInt64
	if err := t.stmt(qNextEndTime).QueryRowContext(noCancel).Scan(&n); err != nil {
		return time.Time{}, false, fmt.Errorf("sqlite: next end time: %w", err)
	}
	if !n.Valid {
		return time.Time{}, false, nil
	}
	return time.Unix(0, n.Int64).UTC(), true, nil
}
