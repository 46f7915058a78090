package postgres

import "context"

// SchemaVersion returns the highest migration applied to the database,
// for readiness: another replica running a newer drawbridge may have
// migrated it past LatestSchemaVersion.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// LatestSchemaVersion is the package function, as a method for callers
// that hold any store.
func (s *Store) LatestSchemaVersion() int { return LatestSchemaVersion() }
