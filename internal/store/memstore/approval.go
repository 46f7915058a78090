package memstore

import (
	"context"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/jitrows"
)

// Approval records live on their request's row (requestRow.approval).

func (t *tx) PutApproval(ctx context.Context, requestID string, a jit.ApprovalRecord) error {
	if err := t.writable("put approval"); err != nil {
		return err
	}
	row, ok := t.s.requests[requestID]
	if !ok {
		return store.NotFound("request", requestID)
	}
	body, err := jitrows.EncodeApproval("memstore", requestID, a)
	if err != nil {
		return err
	}
	row.approvalState, row.approval = a.State, body
	set(t, t.s.requests, requestID, row)
	return nil
}

func (t *tx) GetApproval(ctx context.Context, requestID string) (jit.PendingRequest, error) {
	if t.done {
		return jit.PendingRequest{}, errTxDone
	}
	row, ok := t.s.requests[requestID]
	if !ok || row.approval == nil {
		return jit.PendingRequest{}, store.NotFound("request that needs approval", requestID)
	}
	return t.pendingRequest(row)
}

func (t *tx) ListApprovals(ctx context.Context, state string) ([]jit.PendingRequest, error) {
	if t.done {
		return nil, errTxDone
	}
	ids := keysWhere(t.s.requests, func(_ string, row requestRow) bool {
		return row.approval != nil && row.approvalState == state
	}, oldestFirst, 0)
	out := make([]jit.PendingRequest, 0, len(ids))
	for _, id := range ids {
		p, err := t.pendingRequest(t.s.requests[id])
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// pendingRequest decodes a request row with its grants and approval record.
func (t *tx) pendingRequest(row requestRow) (jit.PendingRequest, error) {
	p, err := jitrows.DecodePendingRequest(row.body, row.approval)
	if err == nil {
		p.Request.Grants, err = t.grantsOf(row)
	}
	return p, err
}
