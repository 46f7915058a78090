package memstore

import (
	"context"
	"testing"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store/storetest"
)

// The fake keeps nothing across processes; the upgrade of legacy approval
// objects (which the real stores run when they open) works on it too.
func TestUpgradeLegacyApprovals(t *testing.T) {
	s := New()
	storetest.WriteLegacyApprovals(t, s)
	var n int
	if err := s.InTx(context.Background(), func(tx jit.Tx) error {
		var err error
		n, err = jit.UpgradeApprovalObjects(context.Background(), tx)
		return err
	}); err != nil || n != 3 {
		t.Fatalf("UpgradeApprovalObjects = %d, %v; want 3", n, err)
	}
	storetest.CheckUpgradedApprovals(t, s)
}
