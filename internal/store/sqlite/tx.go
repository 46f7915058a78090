package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/audit/auditstore"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/jsonmemo"
	"github.com/drawbridge/drawbridge/internal/store"
)

// tx is one transaction; it is valid only inside the function given to InTx.
type tx struct {
	tx *sql.Tx
	// stmts are the prepared statements of tx's connection pool: the
	// writer's, or the read pool's for ReadTx.
	stmts map[string]*sql.Stmt
	// bound are statements of stmts already bound to tx (nil: bind every
	// time); a group commit's transactions share them.
	bound map[string]*sql.Stmt
	// cache is the writer's row cache (cache.go); nil for read-pool
	// transactions, which see a snapshot of their own.
	cache *rowCache
	// memo is the store's decode memo (exact by content, so shared by the
	// writer and the read pool).
	memo *jsonmemo.Memo
	// wrote is set before tx runs its first statement that is not a
	// SELECT: from then on a failure must be undone (runOptimistic).
	wrote bool
	// headDirty, if set, defers writing the audit log's head: the head
	// goes only to the writer's cache and *headDirty is set, and the batch
	// writes it once, before committing (runOptimistic). nil: written at
	// once.
	headDirty *bool
	tune      tuning
}

var (
	_ jit.Tx                 = (*tx)(nil)
	_ auditstore.RecordTable = (*tx)(nil)
	_ store.RawObjects       = (*tx)(nil)
)

// GetObjectRaw returns the stored JSON of an object.
// The caller must not modify the returned bytes.
func (t *tx) GetObjectRaw(ctx context.Context, kind, key string) ([]byte, error) {
	if r, ok := t.cache.get(tableObjects, kind, key); ok {
		if !r.present {
			return nil, store.NotFound(kind, key)
		}
		return r.body, nil
	}
	var body []byte
	err := t.stmt(qGetObject).QueryRowContext(noCancel, kind, key).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		t.cache.absent(tableObjects, kind, key)
		return nil, store.NotFound(kind, key)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: get %s %q: %w", kind, key, err)
	}
	t.cache.put(tableObjects, kind, key, body)
	return body, nil
}

func (t *tx) GetObject(ctx context.Context, kind, key string, into any) error {
	body, err := t.GetObjectRaw(ctx, kind, key)
	if err != nil {
		return err
	}
	// Objects read again unchanged (a VM, the audit head) skip decoding.
	if err := t.memo.DecodeInto(body, into); err != nil {
		return fmt.Errorf("sqlite: decode %s %q: %w", kind, key, err)
	}
	return nil
}

func (t *tx) PutObject(ctx context.Context, kind, key string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("sqlite: encode %s %q: %w", kind, key, err)
	}
	return t.putObject(kind, key, body)
}

// PutObjectRaw stores body as the object's stored form; GetObjectRaw
// returns exactly these bytes. body's bytes must not be modified
// afterwards.
// Memo returns the store's decode memo, for callers of GetObjectRaw.
func (t *tx) Memo() *jsonmemo.Memo { return t.memo }

func (t *tx) PutObjectRaw(ctx context.Context, kind, key string, body store.EncodedJSON) error {
	return t.putObject(kind, key, body.Bytes())
}

// putObject stores body, which is valid JSON, unchecked.
func (t *tx) putObject(kind, key string, body []byte) error {
	if _, err := t.stmt(qPutObject).ExecContext(noCancel, kind, key, body); err != nil {
		return fmt.Errorf("sqlite: put %s %q: %w", kind, key, err)
	}
	t.cache.put(tableObjects, kind, key, body)
	return nil
}

func (t *tx) DeleteObject(ctx context.Context, kind, key string) error {
	if _, err := t.stmt(qDeleteObject).ExecContext(noCancel, kind, key); err != nil {
		return fmt.Errorf("sqlite: delete %s %q: %w", kind, key, err)
	}
	t.cache.absent(tableObjects, kind, key)
	return nil
}

// ListObjects reads all rows before calling fn, so fn may use the
// transaction (even change objects of the same kind) while listing.
func (t *tx) ListObjects(ctx context.Context, kind string, fn func(key string, body []byte) error) error {
	rows, err := t.stmt(qListObjects).QueryContext(noCancel, kind)
	if err != nil {
		return fmt.Errorf("sqlite: list %s: %w", kind, err)
	}
	return readAllThen(rows, "list "+kind, fn)
}

// readAllThen scans every (key, body) row, closes rows, and only then calls
// fn for each: fn may use the transaction, which a statement still
// stepping through rows would get in the way of.
func readAllThen[K any](rows *sql.Rows, what string, fn func(key K, body []byte) error) error {
	type row struct {
		key  K
		body []byte
	}
	var all []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.key, &r.body); err != nil {
			rows.Close()
			return fmt.Errorf("sqlite: %s: %w", what, err)
		}
		all = append(all, r)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
	for _, r := range all {
		if err := fn(r.key, r.body); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) GetVM(ctx context.Context, id string) (inventory.VM, error) {
	return inventory.GetVM(ctx, t, id)
}

// scanAll decodes every row's single body column.
func scanAll[T any](rows *sql.Rows, what string, decode func([]byte) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("sqlite: list %s: %w", what, err)
		}
		v, err := decode(body)
		if err != nil {
			return nil, fmt.Errorf("sqlite: decode %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list %s: %w", what, err)
	}
	return out, nil
}

// decodeRow decodes a row's body through jsonmemo, which remembers values
// by their bytes: the policy and the grants every request reads again
// unchanged (and the grants the writer just stored, which it remembers)
// skip encoding/json.
func decodeRow[T any](m *jsonmemo.Memo) func(body []byte) (T, error) {
	return func(body []byte) (T, error) {
		var v T
		_, err := jsonmemo.Decode(m, body, &v)
		return v, err
	}
}

// decodeJSON decodes without the memo: request bodies are listed now and
// then, each once, and would only crowd out what is read again.
func decodeJSON[T any](body []byte) (T, error) {
	var v T
	err := json.Unmarshal(body, &v)
	return v, err
}
