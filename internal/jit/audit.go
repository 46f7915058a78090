package jit

import (
	"context"
	"fmt"
	"slices"
)

// SystemPrincipal is the actor of changes nobody asked for directly: the
// expiry job ending grants at their end time, pending requests lapsing.
const SystemPrincipal = "drawbridge"

// Audited operation names written by the service.
const (
	AuditPolicyPut       = "policy.put"
	AuditPolicyDelete    = "policy.delete"
	AuditInitiate        = "initiate"
	AuditRequestPending  = "request.pending"
	AuditRequestApprove  = "request.approve"
	AuditRequestDeny     = "request.deny"
	AuditRequestLapse    = "request.lapse"
	AuditGrantEnd        = "grant.end"
	AuditInventoryApply  = "inventory.apply"
	AuditRequestApproved = "request.approved" // the last approval opened the grants
)

type actorKey struct{}

// WithActor returns ctx carrying actor, for service calls whose signature
// has no actor (PutPolicy, DeletePolicy, ApplyInventory). The API sets it
// for every authenticated request.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor ctx carries, or the system principal.
func ActorFrom(ctx context.Context) Actor {
	if a, ok := ctx.Value(actorKey{}).(Actor); ok && a.Principal != "" {
		return a
	}
	return Actor{Principal: SystemPrincipal}
}

// endGrant ends g for reason in c: the ended grant is stored and its audit
// record and closed event queued. It returns the ended grant.
func endGrant(c *change, actor Actor, g Grant, reason Reason) (Grant, error) {
	ended, err := g.End(reason, c.now)
	if err != nil {
		return Grant{}, err
	}
	if err := c.tx.UpdateGrant(c.ctx, ended); err != nil {
		return Grant{}, err
	}
	return ended, recordGrantEnd(c, actor, g, ended)
}

// endActive ends vmID's active grants for reason, except those keep
// (if set) reports true for; it returns how many it ended.
func endActive(c *change, actor Actor, vmID string, reason Reason, keep func(Grant) bool) (int, error) {
	grants, err := c.tx.ListGrants(c.ctx, GrantFilter{VMID: vmID, ActiveOnly: true})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, g := range grants {
		if keep != nil && keep(g) {
			continue
		}
		if _, err := endGrant(c, actor, g, reason); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// recordGrantEnd queues the audit record and closed event of grant before
// having become after (ended).
func recordGrantEnd(c *change, actor Actor, before, after Grant) error {
	c.events = append(c.events, grantEvent(EventClosed, actor, "", after, after.StatusReason, "", c.now))
	return c.audit(actor, AuditGrantEnd, after.VMID,
		fmt.Sprintf("grant %s (port %d from %s) %s: %s", after.ID, after.Port, after.Source, after.Status, after.StatusReason),
		before, after)
}

// recordRequest queues req's audit records: one per VM it names, so that
// the log can be filtered by VM, each with that VM's grants as the after
// state.
func recordRequest(c *change, actor Actor, op string, req Request) error {
	for _, vmID := range requestVMs(req) {
		after := req
		after.Grants = slices.DeleteFunc(slices.Clone(req.Grants), func(g Grant) bool { return g.VMID != vmID })
		detail := fmt.Sprintf("request %s", req.ID)
		if req.Justification != "" {
			detail += ": " + req.Justification
		}
		if err := c.audit(actor, op, vmID, detail, nil, after); err != nil {
			return err
		}
	}
	return nil
}
