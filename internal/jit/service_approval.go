package jit

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
)

// holdForApproval stores req in c as a request that waits for approval:
// its row with an approval record, its grants as rows with status Pending
// (never active), which keep their IDs when it opens.
func (s *Service) holdForApproval(c *change, actor Actor, req Request, rules []ApprovalRule) (Request, error) {
	if strings.TrimSpace(req.Justification) == "" {
		return Request{}, invalid("justification", "a justification is required: the requested ports need approval from %s", describeRules(rules))
	}
	for i := range req.Grants {
		req.Grants[i].Status, req.Grants[i].StatusReason = StatusPending, ReasonAwaitingApproval
	}
	timeout := s.approvalTimeout
	if timeout <= 0 {
		timeout = DefaultApprovalTimeout
	}
	if err := c.tx.InsertRequest(c.ctx, req); err != nil {
		return Request{}, err
	}
	rec := ApprovalRecord{Rules: rules, Approvals: []Approval{}, State: ApprovalPending, LapseAt: c.now.Add(timeout)}
	if err := c.tx.PutApproval(c.ctx, req.ID, rec); err != nil {
		return Request{}, err
	}
	c.grantEvents(EventRequested, actor, actor.Principal, req.Grants, ReasonAwaitingApproval, req.Justification)
	c.wakeExpiry(time.Time{}) // the lapse may come before the job's deadline
	return req, recordRequest(c, actor, AuditRequestPending, req)
}

// GetPendingRequest returns a request that needed approval, pending or
// decided, with its grants as they are now.
func (s *Service) GetPendingRequest(ctx context.Context, id string) (PendingRequest, error) {
	return readTx(ctx, s.store, func(tx Tx) (PendingRequest, error) { return getPending(ctx, tx, id) })
}

func getPending(ctx context.Context, tx Tx, id string) (PendingRequest, error) {
	p, err := tx.GetApproval(ctx, id)
	return p, orNotFound(err, "id", "request %s is not a request that needs approval", id)
}

// ListPendingRequests returns the requests waiting for approval, oldest first.
func (s *Service) ListPendingRequests(ctx context.Context) ([]PendingRequest, error) {
	return readTx(ctx, s.store, func(tx Tx) ([]PendingRequest, error) { return tx.ListApprovals(ctx, ApprovalPending) })
}

// Approve records actor's approval of a pending request. When it is the
// last one needed, the request opens in the same transaction: its grants
// are checked against the policy as it is now, start now and last the
// duration asked for, keep the IDs shown while pending, and the firewall
// is changed as for Initiate.
func (s *Service) Approve(ctx context.Context, actor Actor, id string) (PendingRequest, Request, error) {
	return s.ApproveWithReason(ctx, actor, id, "")
}

// ApproveWithReason is Approve that records why, as Deny does.
func (s *Service) ApproveWithReason(ctx context.Context, actor Actor, id, reason string) (PendingRequest, Request, error) {
	p, err := s.GetPendingRequest(ctx, id) // for the VMs to lock
	if err != nil {
		return PendingRequest{}, Request{}, err
	}
	res, after, err := write(ctx, s, lowerAll(requestVMs(p.Request)), func(c *change) (approval, error) {
		return s.approve(c, actor, id, reason)
	})
	if err != nil || len(after.reconciled) == 0 {
		return res.pending, res.opened, err
	}
	opened, err := s.withCurrentGrants(ctx, res.opened)
	return res.pending, opened, err
}

// approval is what Approve did: the pending request with the approval
// and, if it was the last one needed, the request it opened.
type approval struct {
	pending PendingRequest
	opened  Request
}

func (s *Service) approve(c *change, actor Actor, id, reason string) (approval, error) {
	p, err := getPending(c.ctx, c.tx, id)
	if err != nil {
		return approval{}, err
	}
	p, final, err := addApproval(p, actor, c.now) // checks p is still pending
	if err != nil {
		return approval{}, err
	}
	p.Approvals[len(p.Approvals)-1].Reason = reason
	if final {
		return s.openApproved(c, actor, p)
	}
	if err := c.tx.PutApproval(c.ctx, id, p.ApprovalRecord); err != nil {
		return approval{}, err
	}
	return approval{pending: p}, c.audit(actor, AuditRequestApprove, firstVM(p.Request), fmt.Sprintf("request %s: approval %d", id, len(p.Approvals)), nil, p.Approvals[len(p.Approvals)-1])
}

// openApproved opens p, whose last approval approver just gave, through
// the steps of Initiate (load → plan → apply → record) under the policy as
// it is now, and marks p approved. Its Pending grant rows become the
// opened grants, keeping their IDs, with their time window starting now.
func (s *Service) openApproved(c *change, approver Actor, p PendingRequest) (approval, error) {
	requester := Actor{Principal: p.Request.Requestor, Address: p.Request.SourceAddress}
	pi := approvedInput(p.Request)
	pi.actor, pi.now, pi.newID = requester, c.now, s.newID
	plan, err := s.loadAndPlan(c, p.Request.PolicyID, pi)
	if err != nil {
		return approval{}, err
	}
	if err := s.applyPlan(c, &plan); err != nil {
		return approval{}, err
	}
	if err := recordSuperseded(c, requester, plan); err != nil {
		return approval{}, err
	}
	for _, g := range plan.req.Grants {
		if err := c.tx.UpdateGrant(c.ctx, g); err != nil {
			return approval{}, err
		}
	}
	p.State, p.DecidedAt, p.DecidedBy = ApprovalApproved, c.now, approver.Principal
	if err := c.tx.PutApproval(c.ctx, p.Request.ID, p.ApprovalRecord); err != nil {
		return approval{}, err
	}
	p.Request.Grants = plan.req.Grants
	if err := c.audit(approver, AuditRequestApprove, firstVM(p.Request), fmt.Sprintf("request %s: approval %d, request opened", p.Request.ID, len(p.Approvals)), nil, p.Approvals[len(p.Approvals)-1]); err != nil {
		return approval{}, err
	}
	return approval{pending: p, opened: plan.req}, recordOpened(c, requester, plan.req, &approver)
}

// approvedInput is the request a pending request asked for, to plan
// again at approval: per VM its ports with the durations asked for, and
// the IDs of its grants to keep.
func approvedInput(r Request) planInput {
	pi := planInput{in: InitiateInput{Justification: r.Justification}, reqID: r.ID, keepID: map[string]string{}}
	index := map[string]int{}
	for _, g := range r.Grants {
		i, ok := index[inventory.Key(g.VMID)]
		if !ok {
			i = len(pi.in.VirtualMachines)
			index[inventory.Key(g.VMID)] = i
			pi.in.VirtualMachines = append(pi.in.VirtualMachines, InitiateVM{ID: g.VMID})
		}
		pi.in.VirtualMachines[i].Ports = append(pi.in.VirtualMachines[i].Ports, InitiatePort{
			Number:                     g.Port,
			Duration:                   g.EndTime.Sub(g.StartTime).String(),
			AllowedSourceAddressPrefix: g.Source.String(),
		})
		pi.keepID[grantKey(g.VMID, g.Port)] = g.ID
	}
	return pi
}

// Deny ends a pending request: its grants never open.
func (s *Service) Deny(ctx context.Context, actor Actor, id, reason string) (PendingRequest, error) {
	if len(reason) > 1024 {
		return PendingRequest{}, invalid("reason", "reason is longer than 1024 characters")
	}
	p, _, err := write(ctx, s, nil, func(c *change) (PendingRequest, error) {
		p, err := getPending(c.ctx, c.tx, id)
		if err != nil {
			return p, err
		}
		if err := checkApprover(p, actor, c.now); err != nil { // and that p is still pending
			return p, err
		}
		return decide(c, actor, p, ApprovalDenied, ReasonDenied, reason)
	})
	return p, err
}

// decide ends pending request p without opening it: its grants end with
// reason, and its approval record says state.
func decide(c *change, actor Actor, p PendingRequest, state string, reason Reason, why string) (PendingRequest, error) {
	before := p.State
	p.State, p.DecidedAt, p.DecidedBy, p.Reason = state, c.now, actor.Principal, why
	p.Request.Grants = slices.Clone(p.Request.Grants)
	for i := range p.Request.Grants {
		g := &p.Request.Grants[i]
		g.Status, g.StatusReason, g.EndedAt = StatusRevoked, reason, c.now
		if err := c.tx.UpdateGrant(c.ctx, *g); err != nil {
			return p, err
		}
	}
	if err := c.tx.PutApproval(c.ctx, p.Request.ID, p.ApprovalRecord); err != nil {
		return p, err
	}
	c.grantEvents(EventDenied, actor, p.Request.Requestor, p.Request.Grants, reason, why)
	op := AuditRequestDeny
	if state == ApprovalLapsed {
		op = AuditRequestLapse
	}
	detail := fmt.Sprintf("request %s %s", p.Request.ID, strings.ToLower(state))
	if why != "" {
		detail += ": " + why
	}
	return p, c.audit(actor, op, firstVM(p.Request), detail, before, p.State)
}

// LapseDue ends pending requests whose approval timeout has passed.
func (s *Service) LapseDue(ctx context.Context) (int, error) {
	n, _, err := write(ctx, s, nil, func(c *change) (int, error) {
		ps, err := c.tx.ListApprovals(c.ctx, ApprovalPending)
		if err != nil {
			return 0, err
		}
		n := 0
		for _, p := range ps {
			if c.now.Before(p.LapseAt) {
				continue
			}
			if _, err := decide(c, Actor{Principal: SystemPrincipal}, p, ApprovalLapsed, ReasonApprovalLapsed, "not decided within the approval timeout"); err != nil {
				return 0, err
			}
			n++
		}
		return n, nil
	})
	return n, err
}
