package jit

import (
	"context"
	"fmt"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
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

// auditTx appends one succeeded record to the audit log inside tx, so that
// it commits (or rolls back) with the change it describes. before and after
// are encoded as JSON; nil leaves them empty.
func (s *Service) auditTx(ctx context.Context, tx Tx, actor Actor, op, target, detail string, before, after any, now time.Time) error {
	rec, err := auditRecord(actor, op, target, detail, before, after, now)
	if err != nil {
		return err
	}
	_, err = auditstore.Append(ctx, tx, rec)
	return err
}

// auditRecord builds the succeeded record auditTx appends.
func auditRecord(actor Actor, op, target, detail string, before, after any, now time.Time) (audit.Record, error) {
	return audit.NewSucceeded(now, actor.Principal, actor.Address, op, target, detail, before, after)
}

// endGrant ends g for reason inside tx: the ended grant is stored and its
// audit record (and closed event) written in the same transaction. It
// returns the ended grant.
func (s *Service) endGrant(ctx context.Context, tx Tx, actor Actor, g Grant, reason Reason, now time.Time) (Grant, error) {
	ended, err := g.End(reason, now)
	if err != nil {
		return Grant{}, err
	}
	if err := tx.UpdateGrant(ctx, ended); err != nil {
		return Grant{}, err
	}
	return ended, s.auditGrantEnd(ctx, tx, actor, g, ended, now)
}

// auditGrantEnd records that grant before became after (ended).
func (s *Service) auditGrantEnd(ctx context.Context, tx Tx, actor Actor, before, after Grant, now time.Time) error {
	rec, err := s.grantEndRecord(tx, actor, before, after, now)
	if err != nil {
		return err
	}
	_, err = auditstore.Append(ctx, tx, rec)
	return err
}

// grantEndRecord queues the closed event of auditGrantEnd and returns its
// audit record, for callers that append several records at once.
func (s *Service) grantEndRecord(tx Tx, actor Actor, before, after Grant, now time.Time) (audit.Record, error) {
	s.events.add(tx, grantEvent(EventClosed, actor, "", after, after.StatusReason, "", now))
	return auditRecord(actor, AuditGrantEnd, after.VMID,
		fmt.Sprintf("grant %s (port %d from %s) %s: %s", after.ID, after.Port, after.Source, after.Status, after.StatusReason),
		before, after, now)
}

// auditRequest records a request: one record per VM it names, so that the
// log can be filtered by VM, each with that VM's grants as the after state.
func (s *Service) auditRequest(ctx context.Context, tx Tx, actor Actor, op string, req Request, now time.Time) error {
	return s.auditRequestAfter(ctx, tx, nil, actor, op, req, now)
}

// auditRequestAfter appends recs and then auditRequest's records, all in
// one auditstore.AppendAll.
func (s *Service) auditRequestAfter(ctx context.Context, tx Tx, recs []audit.Record, actor Actor, op string, req Request, now time.Time) error {
	for _, vmID := range requestVMs(req) {
		var gs []Grant
		for _, g := range req.Grants {
			if g.VMID == vmID {
				gs = append(gs, g)
			}
		}
		after := req
		after.Grants = gs
		detail := fmt.Sprintf("request %s", req.ID)
		if req.Justification != "" {
			detail += ": " + req.Justification
		}
		rec, err := auditRecord(actor, op, vmID, detail, nil, after, now)
		if err != nil {
			return err
		}
		recs = append(recs, rec)
	}
	_, err := auditstore.AppendAll(ctx, tx, recs)
	return err
}
