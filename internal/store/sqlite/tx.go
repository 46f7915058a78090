package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/audit/auditstore"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/jsonmemo"
	"github.com/drawbridge/drawbridge/internal/store"
)

// tx is one transaction: the plain SQL path, which reads and writes the
// database and nothing else. It is valid only inside the function given to
// InTx (or ReadTx). The writer's transactions are seen through the row
// cache (cachedTx, cache_tx.go), which wraps these methods; read-only
// ones use them as they are.
type tx struct {
	tx *sql.Tx
	// stmts are the prepared statements of tx's connection pool: the
	// writer's, or the read pool's for ReadTx.
	stmts map[string]*sql.Stmt
	// memo is the store's decode memo (cache.go), through which rows and
	// objects are decoded; nil decodes with encoding/json alone.
	memo *jsonmemo.Memo
	// wrote is set before tx runs its first statement that is not a
	// SELECT: from then on a failure must be undone (runJobs).
	wrote bool
}

// txn is what a transaction's function is given: a tx, or the writer's
// cachedTx around one.
type txn interface {
	jit.Tx
	auditstore.RecordTable
	store.RawObjects
}

var (
	_ txn = (*tx)(nil)
	_ txn = (*cachedTx)(nil)
)

// GetObjectRaw returns the stored JSON of an object.
// The caller must not modify the returned bytes.
func (t *tx) GetObjectRaw(ctx context.Context, kind, key string) ([]byte, error) {
	return t.oneBody(qGetObject, kind, key, kind, key)
}

// oneBody runs query, selecting one row's body column, with args; no row
// is NotFound(what, id).
func (t *tx) oneBody(query, what, id string, args ...any) ([]byte, error) {
	var body []byte
	err := t.stmt(query).QueryRowContext(noCancel, args...).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.NotFound(what, id)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: get %s %q: %w", what, id, err)
	}
	return body, nil
}

// execRow runs query, which changes the row of what id: none changed is
// NotFound(what, id); a failure reads "sqlite: <verb> id: …".
func (t *tx) execRow(verb, what, id, query string, args ...any) error {
	res, err := t.stmt(query).ExecContext(noCancel, args...)
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err != nil {
		return fmt.Errorf("sqlite: %s %s: %w", verb, id, err)
	} else if n == 0 {
		return store.NotFound(what, id)
	}
	return nil
}

func (t *tx) GetObject(ctx context.Context, kind, key string, into any) error {
	return getObject(ctx, t, kind, key, into)
}

func (t *tx) PutObject(ctx context.Context, kind, key string, v any) error {
	return putObject(ctx, t, kind, key, v)
}

// getObject and putObject are GetObject and PutObject over r's raw
// methods, shared by tx and cachedTx. Decoding goes through the memo:
// objects read again unchanged (a VM, the audit head) skip decoding.
func getObject(ctx context.Context, r store.RawObjects, kind, key string, into any) error {
	body, err := r.GetObjectRaw(ctx, kind, key)
	if err != nil {
		return err
	}
	if err := r.Memo().DecodeInto(body, into); err != nil {
		return fmt.Errorf("sqlite: decode %s %q: %w", kind, key, err)
	}
	return nil
}

func putObject(ctx context.Context, r store.RawObjects, kind, key string, v any) error {
	enc, err := store.EncodeJSON(v)
	if err != nil {
		return fmt.Errorf("sqlite: encode %s %q: %w", kind, key, err)
	}
	return r.PutObjectRaw(ctx, kind, key, enc)
}

// Memo returns the store's decode memo, for callers of GetObjectRaw.
func (t *tx) Memo() *jsonmemo.Memo { return t.memo }

// PutObjectRaw stores body as the object's stored form, unchecked (it is
// valid JSON by construction); GetObjectRaw returns exactly these bytes.
// body's bytes must not be modified afterwards.
func (t *tx) PutObjectRaw(ctx context.Context, kind, key string, body store.EncodedJSON) error {
	if _, err := t.stmt(qPutObject).ExecContext(noCancel, kind, key, body.Bytes()); err != nil {
		return fmt.Errorf("sqlite: put %s %q: %w", kind, key, err)
	}
	return nil
}

func (t *tx) DeleteObject(ctx context.Context, kind, key string) error {
	if _, err := t.stmt(qDeleteObject).ExecContext(noCancel, kind, key); err != nil {
		return fmt.Errorf("sqlite: delete %s %q: %w", kind, key, err)
	}
	return nil
}

// ListObjects reads all rows before calling fn, so fn may use the
// transaction (even change objects of the same kind) while listing.
func (t *tx) ListObjects(ctx context.Context, kind string, fn func(key string, body []byte) error) error {
	rows, err := t.stmt(qListObjects).QueryContext(noCancel, kind)
	return readAllThen(rows, err, "list "+kind, fn)
}

// readAllThen scans every (key, body) row of a query's results, closes
// rows, and only then calls fn for each: fn may use the transaction, which
// a statement still stepping through rows would get in the way of.
func readAllThen[K any](rows *sql.Rows, err error, what string, fn func(key K, body []byte) error) error {
	if err != nil {
		return fmt.Errorf("sqlite: %s: %w", what, err)
	}
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

// scanAll decodes every row's single body column. rows and err are a
// query's results.
func scanAll[T any](rows *sql.Rows, err error, what string, decode func([]byte) (T, error)) ([]T, error) {
	if err != nil {
		return nil, fmt.Errorf("sqlite: list %s: %w", what, err)
	}
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

// decodeRow decodes a row's body through the memo m (nil: encoding/json
// alone), which remembers values by their bytes: the policy and the
// grants every request reads again unchanged (and the grants the writer
// just stored, which cachedTx remembers) skip encoding/json.
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
