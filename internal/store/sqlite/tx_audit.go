package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/store"
)

// Audit records (auditstore.RecordTable) and the audit log's head.

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
