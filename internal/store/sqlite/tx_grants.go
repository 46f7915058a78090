package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/jitrows"
)

// InsertRequest stores the request row (without grants, which live in their
// own rows and change over time) and one row per grant.
func (t *tx) InsertRequest(ctx context.Context, r jit.Request) error {
	_, err := t.insertRequest(r, t.keyID)
	return err
}

// storedGrant is a grant as insertRequest stored it.
type storedGrant struct {
	vmKey string
	body  []byte
	ref   activeRef // with the grant as stored
}

// insertRequest is InsertRequest, finding keys' ids with keyID (tx's, or
// the cache's); it also returns the grants as stored.
func (t *tx) insertRequest(r jit.Request, keyID func(string) (int64, error)) ([]storedGrant, error) {
	req, body, err := jitrows.EncodeRequest("sqlite", r)
	if err != nil {
		return nil, err
	}
	policyKey := strings.ToLower(r.PolicyID)
	policyRef, err := keyID(policyKey)
	if err != nil {
		return nil, err
	}
	_, err = t.stmt(qInsertRequest).ExecContext(noCancel, r.ID, policyRef, req.StartTime.UnixNano(), body)
	if isConstraint(err) {
		return nil, fmt.Errorf("request %s already exists: %w", r.ID, store.ErrConflict)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: insert request %s: %w", r.ID, err)
	}
	ins := t.stmt(qInsertGrant)
	stored := make([]storedGrant, 0, len(r.Grants))
	for i, g := range r.Grants {
		g, body, err := jitrows.EncodeGrant("sqlite", r, i, g)
		if err != nil {
			return nil, err
		}
		grantPolicyRef := policyRef
		if gk := strings.ToLower(g.PolicyID); gk != policyKey {
			if grantPolicyRef, err = keyID(gk); err != nil {
				return nil, err
			}
		}
		vmKey := inventory.Key(g.VMID)
		vmRef, err := keyID(vmKey)
		if err != nil {
			return nil, err
		}
		_, err = ins.ExecContext(noCancel, g.ID, r.ID, i, grantPolicyRef, vmRef, g.Port,
			string(g.Status), g.StartTime.UnixNano(), g.EndTime.UnixNano(), body)
		if isConstraint(err) {
			return nil, fmt.Errorf("grant %s already exists: %w", g.ID, store.ErrConflict)
		} else if err != nil {
			return nil, fmt.Errorf("sqlite: insert grant %s: %w", g.ID, err)
		}
		stored = append(stored, storedGrant{vmKey: vmKey, body: body,
			ref: activeRef{id: g.ID, start: g.StartTime.UnixNano(), requestID: r.ID, idx: i, grant: g}})
	}
	return stored, nil
}

// keyID returns the integer that stands for key (a policy's or VM's
// lower-cased ID) in the indexes, giving key one if it has none. Writer
// only: it may write.
func (t *tx) keyID(key string) (int64, error) {
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
	return id, nil
}

func (t *tx) ListRequests(ctx context.Context, policyID string, limit int) ([]jit.Request, error) {
	key, lim := strings.ToLower(policyID), sqlLimit(limit)
	rows, err := t.stmt(qListRequests).QueryContext(noCancel, key, lim)
	reqs, err := scanAll(rows, err, "requests", decodeJSON[jit.Request])
	if err != nil || len(reqs) == 0 {
		return reqs, err
	}
	// One query for all the requests' grants rather than one per request.
	grows, err := t.stmt(qRequestGrants).QueryContext(noCancel, key, lim)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list request grants: %w", err)
	}
	return reqs, jitrows.AttachGrants("sqlite", reqs, grows)
}

func (t *tx) GetGrant(ctx context.Context, id string) (jit.Grant, error) {
	body, err := t.grantBody(id)
	if err != nil {
		return jit.Grant{}, err
	}
	return t.decodeGrant(id, body)
}

func (t *tx) decodeGrant(id string, body []byte) (jit.Grant, error) {
	g, err := decodeRow[jit.Grant](t.memo)(body)
	if err != nil {
		return jit.Grant{}, fmt.Errorf("sqlite: decode grant %s: %w", id, err)
	}
	return g, nil
}

func (t *tx) ListGrants(ctx context.Context, f jit.GrantFilter) ([]jit.Grant, error) {
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
	return scanAll(rows, err, "grants", decodeRow[jit.Grant](t.memo))
}

// grantBody returns a grant's stored body.
func (t *tx) grantBody(id string) ([]byte, error) { return t.oneBody(qGetGrant, "grant", id, id) }

// UpdateGrant copies only the mutable fields onto the stored grant, so a
// caller holding a stale or partial Grant cannot rewrite its identity,
// port, source or end time.
func (t *tx) UpdateGrant(ctx context.Context, g jit.Grant) error {
	_, _, _, err := t.updateGrant(ctx, g, t.GetGrant)
	return err
}

// updateGrant is UpdateGrant, reading the stored grant with get; it also
// returns the grant as it was and as stored now, and its new body.
func (t *tx) updateGrant(ctx context.Context, g jit.Grant, get func(context.Context, string) (jit.Grant, error)) (was, cur jit.Grant, body []byte, err error) {
	was, err = get(ctx, g.ID)
	if err != nil {
		return was, cur, nil, err
	}
	cur = was.WithStateOf(g).InUTC()
	if body, err = json.Marshal(cur); err != nil {
		return was, cur, nil, fmt.Errorf("sqlite: encode grant %s: %w", g.ID, err)
	}
	if was.Status == jit.StatusPending { // its window may change too (approval.go)
		err = t.updatePendingGrant(cur, body)
	} else {
		_, err = t.stmt(qUpdateGrant).ExecContext(noCancel, string(cur.Status), body, g.ID)
	}
	if err != nil {
		return was, cur, nil, fmt.Errorf("sqlite: update grant %s: %w", g.ID, err)
	}
	return was, cur, body, nil
}

func (t *tx) DueGrants(ctx context.Context, now time.Time, limit int) ([]jit.Grant, error) {
	rows, err := t.stmt(qDueGrants).QueryContext(noCancel, now.UnixNano(), sqlLimit(limit))
	return scanAll(rows, err, "grants", decodeRow[jit.Grant](t.memo))
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
