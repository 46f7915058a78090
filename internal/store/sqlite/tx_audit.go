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

// AuditHead returns the audit log's head (zero if none).
func (t *tx) AuditHead(ctx context.Context) (int64, string, error) {
	var seq int64
	var hash string
	err := t.stmt(qAuditHead).QueryRowContext(noCancel).Scan(&seq, &hash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, "", fmt.Errorf("sqlite: read audit head: %w", err)
	}
	return seq, hash, nil
}

// SetAuditHead replaces the audit log's head.
func (t *tx) SetAuditHead(ctx context.Context, seq int64, hash string) error {
	if _, err := t.stmt(qSetHead).ExecContext(noCancel, seq, hash); err != nil {
		return fmt.Errorf("sqlite: write audit head: %w", err)
	}
	return nil
}

// ListAuditRecords reads all records before calling fn, like ListObjects.
func (t *tx) ListAuditRecords(ctx context.Context, fn func(seq int64, body []byte) error) error {
	rows, err := t.stmt(qListAudit).QueryContext(noCancel)
	return readAllThen(rows, err, "list audit records", fn)
}
