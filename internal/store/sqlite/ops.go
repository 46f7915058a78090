package sqlite

import "context"

// WriterQueueDepth is how many transactions wait for the writer now (a
// metric; a snapshot, stale as soon as it is read).
func (s *Store) WriterQueueDepth() int { return len(s.jobs) }

// SchemaVersion returns the highest migration applied to the database,
// for readiness: it differs from LatestSchemaVersion once a newer
// drawbridge migrated the file under this process.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	db := s.readDB
	if db == nil {
		db = s.db // ":memory:": only the writer's connection sees the data
	}
	var v int
	err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// LatestSchemaVersion is the package function, as a method for callers
// that hold any store.
func (s *Store) LatestSchemaVersion() int { return LatestSchemaVersion() }
