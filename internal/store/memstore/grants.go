package memstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/jitrows"
)

// Requests and their grants, in the orders the real backends list them.

func (t *tx) InsertRequest(ctx context.Context, r jit.Request) error {
	if err := t.writable("insert request"); err != nil {
		return err
	}
	if _, ok := t.s.requests[r.ID]; ok {
		return fmt.Errorf("request %s already exists: %w", r.ID, store.ErrConflict)
	}
	req, body, err := jitrows.EncodeRequest("memstore", r)
	if err != nil {
		return err
	}
	// Validate everything before the first write, so a failure changes nothing.
	row := requestRow{policyKey: strings.ToLower(r.PolicyID), start: req.StartTime, body: body}
	grants := make([]grantRow, len(r.Grants))
	for i, g := range r.Grants {
		g, gb, err := jitrows.EncodeGrant("memstore", r, i, g)
		if err != nil {
			return err
		}
		if _, ok := t.s.grants[g.ID]; ok || slices.Contains(row.grantIDs, g.ID) {
			return fmt.Errorf("grant %s already exists: %w", g.ID, store.ErrConflict)
		}
		grants[i] = grantRow{
			requestID: r.ID, idx: i, policyKey: strings.ToLower(g.PolicyID), vmKey: inventory.Key(g.VMID),
			port: g.Port, status: g.Status, start: g.StartTime, end: g.EndTime, body: gb,
		}
		row.grantIDs = append(row.grantIDs, g.ID)
	}
	for i, id := range row.grantIDs {
		set(t, t.s.grants, id, grants[i])
	}
	set(t, t.s.requests, r.ID, row)
	return nil
}

func (t *tx) ListRequests(ctx context.Context, policyID string, limit int) ([]jit.Request, error) {
	if t.done {
		return nil, errTxDone
	}
	key := strings.ToLower(policyID)
	ids := keysWhere(t.s.requests, func(_ string, row requestRow) bool {
		return row.policyKey == key && jit.Opened(row.approvalState)
	}, func(a, b requestRow, aID, bID string) bool { return oldestFirst(b, a, bID, aID) }, limit) // newest first
	out, err := decodeAll[jit.Request](t.s.requests, ids)
	for i := 0; err == nil && i < len(out); i++ {
		out[i].Grants, err = t.grantsOf(t.s.requests[ids[i]])
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// oldestFirst orders requests by start time, then ID.
func oldestFirst(a, b requestRow, aID, bID string) bool {
	if !a.start.Equal(b.start) {
		return a.start.Before(b.start)
	}
	return aID < bID
}

// grantsOf decodes the grants of the request row, in its order.
func (t *tx) grantsOf(row requestRow) ([]jit.Grant, error) {
	return decodeAll[jit.Grant](t.s.grants, row.grantIDs)
}

func (t *tx) GetGrant(ctx context.Context, id string) (jit.Grant, error) {
	return get[jit.Grant](t, t.s.grants, id, "grant", id)
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
	return decodeAll[jit.Grant](t.s.grants, keysWhere(t.s.grants, func(_ string, g grantRow) bool {
		return (f.VMID == "" || g.vmKey == vm) &&
			(f.PolicyID == "" || g.policyKey == pol) &&
			(f.Port == 0 || g.port == f.Port) &&
			(!f.ActiveOnly || g.status == jit.StatusInitiated)
	}, newestFirst, f.Limit))
}

func (t *tx) UpdateGrant(ctx context.Context, g jit.Grant) error {
	if err := t.writable("update grant"); err != nil {
		return err
	}
	cur, err := get[jit.Grant](t, t.s.grants, g.ID, "grant", g.ID)
	if err != nil {
		return err
	}
	cur, body, err := jitrows.EncodeGrantUpdate("memstore", cur, g)
	if err != nil {
		return err
	}
	row := t.s.grants[g.ID]
	row.status, row.start, row.end, row.body = cur.Status, cur.StartTime, cur.EndTime, body
	set(t, t.s.grants, g.ID, row)
	return nil
}

func (t *tx) DueGrants(ctx context.Context, now time.Time, limit int) ([]jit.Grant, error) {
	if t.done {
		return nil, errTxDone
	}
	return decodeAll[jit.Grant](t.s.grants, keysWhere(t.s.grants, func(_ string, g grantRow) bool {
		return g.status == jit.StatusInitiated && !g.end.After(now)
	}, func(a, b grantRow, aID, bID string) bool {
		if !a.end.Equal(b.end) {
			return a.end.Before(b.end)
		}
		return aID < bID
	}, limit))
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
