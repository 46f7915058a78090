package postgres

import "context"

const qListObjectsAfter = `SELECT key, body FROM objects WHERE kind = $1 AND key > $2 ORDER BY key LIMIT $3`

// ListObjectsAfter implements auditstore.ObjectRange: at most limit
// objects of kind with keys after after, in key order, read before fn is
// called (like ListObjects). The audit log is read this way a page at a
// time.
func (t *tx) ListObjectsAfter(ctx context.Context, kind, after string, limit int, fn func(key string, body []byte) error) error {
	return t.listObjects(ctx, kind, fn, qListObjectsAfter, kind, after, limit)
}
