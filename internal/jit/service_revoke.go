package jit

import (
	"context"
	"errors"

	"github.com/drawbridge/drawbridge/internal/store"
)

// Revoke ends an active grant early (UserRequested) and closes it on the firewall.
func (s *Service) Revoke(ctx context.Context, actor Actor, grantID string) (Grant, error) {
	now := s.clock.Now().UTC()
	var g Grant
	var later []string
	err := s.store.InTx(ctx, func(tx Tx) error {
		var err error
		g, err = tx.GetGrant(ctx, grantID)
		if errors.Is(err, store.ErrNotFound) {
			return notFound("grantId", "grant %s not found", grantID)
		} else if err != nil {
			return err
		}
		if g.Status != StatusInitiated {
			return conflict("grantId", "grant %s is already %s (%s)", grantID, g.Status, g.StatusReason)
		}
		if g, err = s.endGrant(ctx, tx, actor, g, ReasonUserRequested, now); err != nil {
			return err
		}
		// A firewall failure does not undo the revoke: it is recorded and
		// the reconcile job retries until the firewall closes.
		later, err = s.applyAllInTx(ctx, tx, []string{g.VMID}, now, nil)
		return err
	})
	if err != nil {
		return Grant{}, err
	}
	for _, vmID := range later {
		if err := s.ReconcileVM(ctx, vmID); err != nil {
			return g, err
		}
	}
	return g, nil
}
