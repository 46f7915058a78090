package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/jitrows"
)

// Requests and grants.

// InsertRequest stores the request row and one row per grant. A duplicate
// ID is ErrConflict (ON CONFLICT DO NOTHING, so the transaction is not
// aborted by a unique violation).
func (t *tx) InsertRequest(ctx context.Context, r jit.Request) error {
	req, body, err := jitrows.EncodeRequest("postgres", r)
	if err != nil {
		return err
	}
	n, err := t.exec(ctx, "insert request", qInsertRequest, r.ID, strings.ToLower(r.PolicyID), req.StartTime.UnixNano(), body)
	if err != nil {
		return fmt.Errorf("postgres: insert request %s: %w", r.ID, err)
	} else if n == 0 {
		return fmt.Errorf("request %s already exists: %w", r.ID, store.ErrConflict)
	}
	notified := map[string]bool{}
	for i, g := range r.Grants {
		g, body, err := jitrows.EncodeGrant("postgres", r, i, g)
		if err != nil {
			return err
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
	reqs, err := queryAll[jit.Request](ctx, t, "list requests", qListRequests, key, lim)
	if err != nil || len(reqs) == 0 {
		return reqs, err
	}
	grows, err := t.query(ctx, "list request grants", qRequestGrants, key, lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: list request grants: %w", err)
	}
	return reqs, jitrows.AttachGrants("postgres", reqs, t.rows(grows, "list request grants"))
}

func (t *tx) GetGrant(ctx context.Context, id string) (jit.Grant, error) {
	return getOne[jit.Grant](ctx, t, "grant", id, qGetGrant, id)
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
	return queryAll[jit.Grant](ctx, t, "list grants", q, args...)
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
	cur, body, err := jitrows.EncodeGrantUpdate("postgres", cur, g)
	if err != nil {
		return err
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
	return queryAll[jit.Grant](ctx, t, "due grants", q, string(jit.StatusInitiated), now.UnixNano(), sqlLimit(limit))
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
