package sqlite

import (
	"context"

	"github.com/drawbridge/drawbridge/internal/store"
)

// WriterQueueDepth is how many transactions wait for the writer now (a
// metric; a snapshot, stale as soon as it is read).
func (s *Store) WriterQueueDepth() int { return len(s.jobs) }

// SchemaVersion returns the highest migration applied to the database,
// for readiness: it differs from LatestSchemaVersion once a newer
// drawbridge migrated the file under this process.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	db := s.db // ":memory:": only the writer's connection sees the data
	if s.read != nil {
		db = s.read.db
	}
	var v int
	err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// LatestSchemaVersion is the highest migration this build embeds, for
// readiness (the database must be at it).
func (s *Store) LatestSchemaVersion() int { return store.LatestVersion(migrationFiles, "migrations") }
