package sqlite

import (
	"context"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store/jitrows"
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
	body, err := jitrows.EncodeApproval("sqlite", requestID, a)
	if err != nil {
		return err
	}
	return t.execRow("put approval of request", "request", requestID, qPutApproval, a.State, body, requestID)
}

func (t *tx) GetApproval(ctx context.Context, requestID string) (jit.PendingRequest, error) {
	ps, err := t.approvals(qGetApproval, requestID)
	return jitrows.OneApproval(requestID, ps, err)
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
	return jitrows.Approvals("sqlite", rows, func(id string) ([]jit.Grant, error) {
		grows, err := t.stmt(qGrantsOfRequest).QueryContext(noCancel, id)
		return scanAll(grows, err, "grants", decodeJSON[jit.Grant])
	})
}

// updatePendingGrant is UpdateGrant of a grant stored as Pending: g is
// the grant as it is to be stored, body its encoding.
func (t *tx) updatePendingGrant(g jit.Grant, body []byte) error {
	_, err := t.stmt(qUpdatePendingGrant).ExecContext(noCancel, string(g.Status), g.StartTime.UnixNano(), g.EndTime.UnixNano(), body, g.ID)
	return err
}
