package jit

import (
	"context"
)

// Revoke ends an active grant early (UserRequested) and closes it on the
// firewall. A firewall failure does not undo the revoke: it is recorded and
// the reconcile job retries until the firewall closes; Revoke returns it.
func (s *Service) Revoke(ctx context.Context, actor Actor, grantID string) (Grant, error) {
	g, after, err := write(ctx, s, nil, func(c *change) (Grant, error) { return s.revoke(c, actor, grantID) })
	if err != nil {
		return Grant{}, err
	}
	if len(after.failures) > 0 {
		return g, after.failures[0]
	}
	return g, nil
}

func (s *Service) revoke(c *change, actor Actor, grantID string) (Grant, error) {
	g, err := c.tx.GetGrant(c.ctx, grantID)
	if err != nil {
		return Grant{}, orNotFound(err, "grantId", "grant %s not found", grantID)
	}
	if g.Status == StatusPending {
		return Grant{}, conflict("grantId", "grant %s waits for approval of request %s; deny the request instead", grantID, g.RequestID)
	}
	if g.Status != StatusInitiated {
		return Grant{}, conflict("grantId", "grant %s is already %s (%s)", grantID, g.Status, g.StatusReason)
	}
	if g, err = endGrant(c, actor, g, ReasonUserRequested); err != nil {
		return Grant{}, err
	}
	return g, s.applyInStore(c, []string{g.VMID}, nil)
}
