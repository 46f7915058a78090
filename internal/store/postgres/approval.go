package postgres

import (
	"context"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/jitrows"
)

// Approval records live on their request's row (migration 0002).
const (
	qPutApproval     = `UPDATE requests SET approval_state = $1, approval = $2 WHERE id = $3`
	qGetApproval     = `SELECT id, body, approval FROM requests WHERE id = $1 AND approval IS NOT NULL`
	qListApprovals   = `SELECT id, body, approval FROM requests WHERE approval_state = $1 ORDER BY start_time, id`
	qGrantsOfRequest = `SELECT body FROM grants WHERE request_id = $1 ORDER BY idx`
	// A Pending grant opens with its window starting at the approval.
	qUpdatePendingGrant = `UPDATE grants SET status = $1, start_time = $2, end_time = $3, body = $4 WHERE id = $5`
)

func (t *tx) PutApproval(ctx context.Context, requestID string, a jit.ApprovalRecord) error {
	body, err := jitrows.EncodeApproval("postgres", requestID, a)
	if err != nil {
		return err
	}
	n, err := t.exec(ctx, "put approval", qPutApproval, a.State, body, requestID)
	if err != nil {
		return fmt.Errorf("postgres: put approval of request %s: %w", requestID, err)
	} else if n == 0 {
		return store.NotFound("request", requestID)
	}
	return nil
}

func (t *tx) GetApproval(ctx context.Context, requestID string) (jit.PendingRequest, error) {
	ps, err := t.approvals(ctx, qGetApproval, requestID)
	return jitrows.OneApproval(requestID, ps, err)
}

func (t *tx) ListApprovals(ctx context.Context, state string) ([]jit.PendingRequest, error) {
	return t.approvals(ctx, qListApprovals, state)
}

// approvals runs query (selecting id, body, approval of requests) and
// reads each request's grants.
func (t *tx) approvals(ctx context.Context, query, arg string) ([]jit.PendingRequest, error) {
	rows, err := t.query(ctx, "list approvals", query, arg)
	if err != nil {
		return nil, fmt.Errorf("postgres: list approvals: %w", err)
	}
	return jitrows.Approvals("postgres", t.rows(rows, "list approvals"), func(id string) ([]jit.Grant, error) {
		return queryAll[jit.Grant](ctx, t, "grants of request", qGrantsOfRequest, id)
	})
}
