package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Approval records live on their request's row (migration 0007).
const (
	qPutApproval     = `UPDATE requests SET approval_state = ?, approval = ? WHERE id = ?`
	qGetApproval     = `SELECT id, body, approval FROM requests WHERE id = ? AND approval IS NOT NULL`
	qListApprovals   = `SELECT id, body, approval FROM requests WHERE approval_state = ? ORDER BY start_time, id`
	qGrantsOfRequest = `SELECT body FROM grants WHERE request_id = ? ORDER BY idx`
	// A Pending grant opens with its window starting at the approval; any
	// other grant's update leaves the time columns (and the index on
	// start_time) alone.
	qUpdatePendingGrant = `UPDATE grants SET status = ?, start_time = ?, end_time = ?, body = ? WHERE id = ?`
)

var approvalQueries = []string{qPutApproval, qGetApproval, qListApprovals, qGrantsOfRequest, qUpdatePendingGrant}

func (t *tx) PutApproval(ctx context.Context, requestID string, a jit.ApprovalRecord) error {
	body, err := json.Marshal(a.InUTC())
	if err != nil {
		return fmt.Errorf("sqlite: encode approval of request %s: %w", requestID, err)
	}
	res, err := t.stmt(qPutApproval).ExecContext(noCancel, a.State, body, requestID)
	if err != nil {
		return fmt.Errorf("sqlite: put approval of request %s: %w", requestID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: put approval of request %s: %w", requestID, err)
	} else if n == 0 {
		return store.NotFound("request", requestID)
	}
	return nil
}

func (t *tx) GetApproval(ctx context.Context, requestID string) (jit.PendingRequest, error) {
	ps, err := t.approvals(qGetApproval, requestID)
	if err != nil {
		return jit.PendingRequest{}, err
	}
	if len(ps) == 0 {
		return jit.PendingRequest{}, store.NotFound("request that needs approval", requestID)
	}
	return ps[0], nil
}

func (t *tx) ListApprovals(ctx context.Context, state string) ([]jit.PendingRequest, error) {
	return t.approvals(qListApprovals, state)
}

// approvals runs query (selecting id, body, approval of requests) and
// reads each request's grants.
func (t *tx) approvals(query, arg string) ([]jit.PendingRequest, error) {
	rows, err := t.stmt(query).QueryContext(noCancel, arg)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list approvals: %w", err)
	}
	var out []jit.PendingRequest
	for rows.Next() {
		var id string
		var body, approval []byte
		if err := rows.Scan(&id, &body, &approval); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: list approvals: %w", err)
		}
		p, err := jit.DecodePendingRequest(body, approval)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: request %s: %w", id, err)
		}
		out = append(out, p)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("sqlite: list approvals: %w", err)
	}
	// The grants are read once the rows are closed: one statement at a time.
	for i := range out {
		grows, err := t.stmt(qGrantsOfRequest).QueryContext(noCancel, out[i].Request.ID)
		if err != nil {
			return nil, fmt.Errorf("sqlite: grants of request %s: %w", out[i].Request.ID, err)
		}
		gs, err := scanAll(grows, "grants", decodeJSON[jit.Grant])
		if err != nil {
			return nil, err
		}
		out[i].Request.Grants = append([]jit.Grant{}, gs...)
	}
	return out, nil
}

// updatePendingGrant is UpdateGrant of a grant stored as Pending: g is
// the grant as it is to be stored, body its encoding.
func (t *tx) updatePendingGrant(g jit.Grant, body []byte) error {
	_, err := t.stmt(qUpdatePendingGrant).ExecContext(noCancel, string(g.Status), g.StartTime.UnixNano(), g.EndTime.UnixNano(), body, g.ID)
	return err
}
