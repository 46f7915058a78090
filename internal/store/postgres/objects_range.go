package postgres

import (
	"context"
	"fmt"
)

const qListObjectsAfter = `SELECT key, body FROM objects WHERE kind = $1 AND key > $2 ORDER BY key LIMIT $3`

// ListObjectsAfter implements auditstore.ObjectRange: at most limit
// objects of kind with keys after after, in key order, read before fn is
// called (like ListObjects). The audit log is read this way a page at a
// time.
func (t *tx) ListObjectsAfter(ctx context.Context, kind, after string, limit int, fn func(key string, body []byte) error) error {
	rows, err := t.query(ctx, "list objects", qListObjectsAfter, kind, after, limit)
	if err != nil {
		return fmt.Errorf("postgres: list %s: %w", kind, err)
	}
	type kv struct {
		key  string
		body []byte
	}
	var page []kv
	for rows.Next() {
		var r kv
		if err := rows.Scan(&r.key, &r.body); err != nil {
			rows.Close()
			return fmt.Errorf("postgres: list %s: %w", kind, t.fail("list objects", err))
		}
		page = append(page, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: list %s: %w", kind, t.fail("list objects", err))
	}
	for _, r := range page {
		if err := fn(r.key, r.body); err != nil {
			return err
		}
	}
	return nil
}
