package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"time"

	"github.com/drawbridge/drawbridge/internal/store"
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

type migration = store.Migration

// migrations returns the embedded migrations in version order.
func migrations() ([]migration, error) { return store.LoadMigrations(migrationFiles, "migrations") }

// migrate applies pending migrations, each in its own transaction together
// with its schema_migrations row, so a crash mid-way leaves the database at
// the previous version rather than half-migrated. The current version is
// re-read inside each transaction (which takes the write lock at BEGIN), so
// two processes opening a fresh file at once do not both apply a migration.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	latest := ms[len(ms)-1].Version
	for _, m := range ms {
		if err := applyMigration(ctx, db, m, latest); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migration, latest int) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var cur int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if cur > latest {
		return fmt.Errorf("%w: the database is at schema version %d, this drawbridge knows versions up to %d; upgrade drawbridge or use another database file",
			ErrNewerSchema, cur, latest)
	}
	if m.Version <= cur {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		return fmt.Errorf("record migration %s: %w", m.Name, err)
	}
	return tx.Commit()
}
