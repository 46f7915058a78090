package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/drawbridge/drawbridge/internal/store/storetest"
)

// Requests that needed approval, kept as objects by an older drawbridge,
// are request and grant rows once the database is opened again.
func TestOpenUpgradesLegacyApprovals(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "legacy.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	storetest.WriteLegacyApprovals(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.CheckUpgradedApprovals(t, s)
}
