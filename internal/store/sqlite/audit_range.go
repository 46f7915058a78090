package sqlite

import "context"

// qAuditAfter reads one page of the audit log. Pages are read once each
// (listing, exporting, verifying), so it is not among the prepared
// statements.
const qAuditAfter = `SELECT seq, body FROM audit_records WHERE seq > ? ORDER BY seq LIMIT ?`

// ListAuditRecordsAfter implements auditstore.RecordRange: at most limit
// records with seq > after, read before fn is called (like ListObjects).
func (t *tx) ListAuditRecordsAfter(ctx context.Context, after int64, limit int, fn func(seq int64, body []byte) error) error {
	rows, err := t.tx.QueryContext(noCancel, qAuditAfter, after, sqlLimit(limit))
	return readAllThen(rows, err, "list audit records", fn)
}
