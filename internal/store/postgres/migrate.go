package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFiles are the schema changes, NNNN_name.sql, applied in version
// order. A released migration is never edited: change the schema by adding
// the next number.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// ErrNewerSchema is store.ErrNewerSchema, returned by Open for a database
// migrated by a newer drawbridge.
var ErrNewerSchema = store.ErrNewerSchema

// migrationLockKey is the advisory lock replicas take while migrating, so
// several replicas starting at once apply each migration exactly once.
const migrationLockKey = 0x6472617762726467 // "drawbrdg"

type migration = store.Migration

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) { return store.LoadMigrations(migrationFiles, "migrations") }

// migrate applies pending migrations while holding a session advisory lock
// (released when the connection is released or drops), each migration in
// its own transaction together with its schema_migrations row.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLockKey)); err != nil {
		return fmt.Errorf("lock for migration: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(migrationLockKey)); err != nil {
			conn.Conn().Close(context.Background())
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var cur int
	if err := conn.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	latest := ms[len(ms)-1].Version
	if cur > latest {
		return fmt.Errorf("%w: the database is at schema version %d, this drawbridge knows versions up to %d; upgrade drawbridge",
			ErrNewerSchema, cur, latest)
	}
	for _, m := range ms {
		if m.Version <= cur {
			continue
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			tx.Rollback(ctx)
			return fmt.Errorf("record migration %s: %w", m.Name, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("commit migration %s: %w", m.Name, err)
		}
	}
	return nil
}
