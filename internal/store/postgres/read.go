package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/drawbridge/drawbridge/internal/store"
)

// The reads every table shares: one JSON body by key, every body a query
// returns, (key, body) pairs of objects. Errors reading rows are the
// transaction's (t.fail), as every statement's are.

// getJSON decodes into the body column of query's one row; no row is
// store.NotFound(what, id).
func (t *tx) getJSON(ctx context.Context, into any, what, id, query string, args ...any) error {
	var body []byte
	err := t.queryRow(ctx, "get "+what, query, args, &body)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.NotFound(what, id)
	} else if err != nil {
		return fmt.Errorf("postgres: get %s %q: %w", what, id, err)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("postgres: decode %s %q: %w", what, id, err)
	}
	return nil
}

// getOne is getJSON into a T (the zero T on error).
func getOne[T any](ctx context.Context, t *tx, what, id, query string, args ...any) (T, error) {
	var v T
	if err := t.getJSON(ctx, &v, what, id, query, args...); err != nil {
		var zero T
		return zero, err
	}
	return v, nil
}

// queryAll runs query (phase names it in errors) and decodes every row's
// single body column.
func queryAll[T any](ctx context.Context, t *tx, phase, query string, args ...any) ([]T, error) {
	rows, err := t.query(ctx, phase, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", phase, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("postgres: %s: %w", phase, t.fail(phase, err))
		}
		var v T
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, fmt.Errorf("postgres: %s: decode: %w", phase, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", phase, t.fail(phase, err))
	}
	return out, nil
}

// listObjects runs query (selecting key, body of objects of kind) and
// reads every row before calling fn, so fn may use the transaction.
func (t *tx) listObjects(ctx context.Context, kind string, fn func(key string, body []byte) error, query string, args ...any) error {
	rows, err := t.query(ctx, "list objects", query, args...)
	if err != nil {
		return fmt.Errorf("postgres: list %s: %w", kind, err)
	}
	var keys []string
	var bodies [][]byte
	for rows.Next() {
		var key string
		var body []byte
		if err := rows.Scan(&key, &body); err != nil {
			rows.Close()
			return fmt.Errorf("postgres: list %s: %w", kind, t.fail("list objects", err))
		}
		keys, bodies = append(keys, key), append(bodies, body)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: list %s: %w", kind, t.fail("list objects", err))
	}
	for i, key := range keys {
		if err := fn(key, bodies[i]); err != nil {
			return err
		}
	}
	return nil
}
