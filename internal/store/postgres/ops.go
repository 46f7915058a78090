package postgres

import (
	"context"

	"github.com/drawbridge/drawbridge/internal/store"
)

// SchemaVersion returns the highest migration applied to the database,
// for readiness: another replica running a newer drawbridge may have
// migrated it past LatestSchemaVersion.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// LatestSchemaVersion is the highest migration this build embeds, for
// readiness (the database must be at it).
func (s *Store) LatestSchemaVersion() int { return store.LatestVersion(migrationFiles, "migrations") }
