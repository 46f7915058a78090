package postgres

import (
	"context"
	"testing"

	"github.com/drawbridge/drawbridge/internal/pgtest"
	"github.com/drawbridge/drawbridge/internal/store/storetest"
)

// Requests that needed approval, kept as objects by an older drawbridge,
// are request and grant rows once the database is opened again.
func TestOpenUpgradesLegacyApprovals(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	storetest.WriteLegacyApprovals(t, s)
	s.Close()
	s, err = Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	storetest.CheckUpgradedApprovals(t, s)
}
