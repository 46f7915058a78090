package jit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/store"
)

// ApprovalRule says that requests for a port need Count approvals from
// members of the group Approvers (a drawbridge extension of Azure's policy).
type ApprovalRule struct {
	Approvers string `json:"approvers"`
	Count     int    `json:"count"`
}

// MaxApprovals bounds ApprovalRule.Count.
const MaxApprovals = 10

func (r *ApprovalRule) validate(field string) error {
	if r == nil {
		return nil
	}
	if strings.TrimSpace(r.Approvers) == "" {
		return invalid(field+".approvers", "approvers (the group whose members approve) is required")
	}
	if r.Count < 1 || r.Count > MaxApprovals {
		return invalid(field+".count", "count %d is not between 1 and %d", r.Count, MaxApprovals)
	}
	return nil
}

// DefaultApprovalTimeout is how long a request may stay Pending.
const DefaultApprovalTimeout = time.Hour

// Object kinds holding requests that need approval: pending ones, and
// decided ones (kept so that they can still be shown).
const (
	KindPending = "jit.pending"
	KindDecided = "jit.decided"
)

// Approval states of a PendingRequest.
const (
	ApprovalPending  = "Pending"
	ApprovalApproved = "Approved"
	ApprovalDenied   = "Denied"
	ApprovalLapsed   = "Lapsed"
)

// Approval is one approver's yes.
type Approval struct {
	Principal string    `json:"principal"`
	Address   string    `json:"sourceAddress,omitempty"`
	Time      time.Time `json:"time"`
	// Groups are the approver groups of the request the approver was a
	// member of when approving: what the approval counts towards.
	Groups []string `json:"groups"`
}

// PendingRequest is a request that needs approval. Its grants have status
// Pending; each one's EndTime-StartTime is the duration asked for, which
// starts counting when the request is approved.
type PendingRequest struct {
	Request   Request        `json:"request"`
	Rules     []ApprovalRule `json:"rules"`
	Approvals []Approval     `json:"approvals"`
	State     string         `json:"state"`
	LapseAt   time.Time      `json:"lapseAt"`
	DecidedAt time.Time      `json:"decidedAt,omitzero"`
	DecidedBy string         `json:"decidedBy,omitempty"`
	Reason    string         `json:"reason,omitempty"`
}

func hasGroup(groups []string, g string) bool {
	for _, have := range groups {
		if strings.EqualFold(have, g) {
			return true
		}
	}
	return false
}

// approvalRules collects the rules of the ports a request names: per
// group, the largest count.
func approvalRules(p Policy, in InitiateInput) []ApprovalRule {
	byGroup := map[string]ApprovalRule{}
	for _, v := range in.VirtualMachines {
		vp, ok := p.VM(v.ID)
		if !ok {
			continue
		}
		for _, port := range v.Ports {
			pp, ok := vp.Port(port.Number)
			if !ok || pp.RequireApproval == nil {
				continue
			}
			k := strings.ToLower(pp.RequireApproval.Approvers)
			if cur, ok := byGroup[k]; !ok || pp.RequireApproval.Count > cur.Count {
				byGroup[k] = *pp.RequireApproval
			}
		}
	}
	out := make([]ApprovalRule, 0, len(byGroup))
	for _, r := range byGroup {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Approvers) < strings.ToLower(out[j].Approvers) })
	return out
}

// holdForApproval stores req as pending in tx instead of opening it.
func (s *Service) holdForApproval(ctx context.Context, tx Tx, actor Actor, req *Request, rules []ApprovalRule, justification string, now time.Time) error {
	if strings.TrimSpace(justification) == "" {
		return invalid("justification", "a justification is required: the requested ports need approval from %s", describeRules(rules))
	}
	for i := range req.Grants {
		req.Grants[i].Status, req.Grants[i].StatusReason = StatusPending, ReasonAwaitingApproval
	}
	timeout := s.approvalTimeout
	if timeout <= 0 {
		timeout = DefaultApprovalTimeout
	}
	p := PendingRequest{Request: *req, Rules: rules, Approvals: []Approval{}, State: ApprovalPending, LapseAt: now.Add(timeout)}
	if err := tx.PutObject(ctx, KindPending, req.ID, p); err != nil {
		return err
	}
	s.events.addGrants(tx, EventRequested, actor, actor.Principal, req.Grants, ReasonAwaitingApproval, justification, now)
	return s.auditRequest(ctx, tx, actor, AuditRequestPending, *req, now)
}

func describeRules(rules []ApprovalRule) string {
	var parts []string
	for _, r := range rules {
		parts = append(parts, fmt.Sprintf("%d of group %q", r.Count, r.Approvers))
	}
	return strings.Join(parts, " and ")
}

// GetPendingRequest returns a request that needed approval, pending or decided.
func (s *Service) GetPendingRequest(ctx context.Context, id string) (PendingRequest, error) {
	var p PendingRequest
	err := s.store.ReadTx(ctx, func(tx Tx) error {
		var err error
		p, _, err = getPending(ctx, tx, id)
		return err
	})
	return p, err
}

func getPending(ctx context.Context, tx Tx, id string) (PendingRequest, bool, error) {
	var p PendingRequest
	err := tx.GetObject(ctx, KindPending, id, &p)
	if err == nil {
		return p, true, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return p, false, err
	}
	err = tx.GetObject(ctx, KindDecided, id, &p)
	if errors.Is(err, store.ErrNotFound) {
		return p, false, notFound("id", "request %s is not a request that needs approval", id)
	}
	return p, false, err
}

// ListPendingRequests returns the requests waiting for approval, oldest first.
func (s *Service) ListPendingRequests(ctx context.Context) ([]PendingRequest, error) {
	var out []PendingRequest
	err := s.store.ReadTx(ctx, func(tx Tx) error {
		var err error
		out, err = listPending(ctx, tx)
		return err
	})
	return out, err
}

func listPending(ctx context.Context, tx Tx) ([]PendingRequest, error) {
	var out []PendingRequest
	err := tx.ListObjects(ctx, KindPending, func(key string, body []byte) error {
		var p PendingRequest
		if err := json.Unmarshal(body, &p); err != nil {
			return fmt.Errorf("pending request %s: %w", key, err)
		}
		out = append(out, p)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Request.StartTime.Before(out[j].Request.StartTime) })
	return out, err
}

// checkApprover says whether actor may approve or deny p now.
func checkApprover(p PendingRequest, actor Actor, now time.Time) error {
	if p.State != ApprovalPending {
		return conflict("id", "request %s is already %s", p.Request.ID, p.State)
	}
	if !now.Before(p.LapseAt) {
		return conflict("id", "request %s lapsed at %s without a decision", p.Request.ID, p.LapseAt.Format(time.RFC3339))
	}
	if strings.EqualFold(actor.Principal, p.Request.Requestor) {
		return forbidden("id", "%s requested %s and cannot approve or deny their own request", actor.Principal, p.Request.ID)
	}
	for _, r := range p.Rules {
		if hasGroup(actor.Groups, r.Approvers) {
			return nil
		}
	}
	return forbidden("id", "%s is not a member of an approver group of request %s (%s)", actor.Principal, p.Request.ID, describeRules(p.Rules))
}

// Approve records actor's approval of a pending request. When it is the
// last one needed, the request opens in the same transaction: its grants
// are checked against the policy as it is now, start now and last the
// duration asked for, and the firewall is changed as for Initiate.
func (s *Service) Approve(ctx context.Context, actor Actor, id string) (PendingRequest, Request, error) {
	var out PendingRequest
	var opened Request
	now := s.clock.Now().UTC()
	final := false
	err := s.store.InTx(ctx, func(tx Tx) error {
		out, final = PendingRequest{}, false // fn may run more than once
		p, isPending, err := getPending(ctx, tx, id)
		if err != nil {
			return err
		}
		if !isPending {
			return conflict("id", "request %s is already %s", id, p.State)
		}
		p, final, err = addApproval(p, actor, now)
		if err != nil {
			return err
		}
		if final {
			return nil // opened below, with the approval, in one transaction
		}
		if err := tx.PutObject(ctx, KindPending, id, p); err != nil {
			return err
		}
		out = p
		return s.auditTx(ctx, tx, actor, AuditRequestApprove, firstVM(p.Request), fmt.Sprintf("request %s: approval %d", id, len(p.Approvals)), nil, p.Approvals[len(p.Approvals)-1], now)
	})
	if err != nil || !final {
		return out, Request{}, err
	}
	opened, out, err = s.openApproved(ctx, actor, id)
	return out, opened, err
}

// addApproval checks actor and appends their approval; final says whether
// every rule is now satisfied. Group membership is the approver's at the
// time of approving, recorded in the approval.
func addApproval(p PendingRequest, actor Actor, now time.Time) (PendingRequest, bool, error) {
	if err := checkApprover(p, actor, now); err != nil {
		return p, false, err
	}
	for _, a := range p.Approvals {
		if strings.EqualFold(a.Principal, actor.Principal) {
			return p, false, conflict("id", "%s has already approved request %s", actor.Principal, p.Request.ID)
		}
	}
	p.Approvals = append(append([]Approval(nil), p.Approvals...), Approval{Principal: actor.Principal, Address: actor.Address, Time: now, Groups: matchingGroups(actor.Groups, p.Rules)})
	return p, rulesMet(p), nil
}

func matchingGroups(groups []string, rules []ApprovalRule) []string {
	var out []string
	for _, r := range rules {
		if hasGroup(groups, r.Approvers) {
			out = append(out, r.Approvers)
		}
	}
	return out
}

func rulesMet(p PendingRequest) bool {
	for _, r := range p.Rules {
		n := 0
		for _, a := range p.Approvals {
			if hasGroup(a.Groups, r.Approvers) {
				n++
			}
		}
		if n < r.Count {
			return false
		}
	}
	return true
}

// openApproved records the final approval and opens the request in one
// transaction, through the same checks as Initiate.
func (s *Service) openApproved(ctx context.Context, actor Actor, id string) (Request, PendingRequest, error) {
	var p PendingRequest
	if err := s.store.InTx(ctx, func(tx Tx) error {
		var err error
		p, _, err = getPending(ctx, tx, id)
		return err
	}); err != nil {
		return Request{}, p, err
	}
	in := InitiateInput{Justification: p.Request.Justification}
	index := map[string]int{}
	for _, g := range p.Request.Grants {
		i, ok := index[strings.ToLower(g.VMID)]
		if !ok {
			i = len(in.VirtualMachines)
			index[strings.ToLower(g.VMID)] = i
			in.VirtualMachines = append(in.VirtualMachines, InitiateVM{ID: g.VMID})
		}
		in.VirtualMachines[i].Ports = append(in.VirtualMachines[i].Ports, InitiatePort{
			Number:                     g.Port,
			Duration:                   g.EndTime.Sub(g.StartTime).String(),
			AllowedSourceAddressPrefix: g.Source.String(),
		})
	}
	requester := Actor{Principal: p.Request.Requestor, Address: p.Request.SourceAddress}
	var decided PendingRequest
	req, err := s.initiate(ctx, requester, p.Request.PolicyID, in, &approvalStep{
		id:       id,
		approver: actor,
		finish: func(tx Tx, now time.Time) error {
			cur, isPending, err := getPending(ctx, tx, id)
			if err != nil {
				return err
			}
			if !isPending {
				return conflict("id", "request %s is already %s", id, cur.State)
			}
			cur, final, err := addApproval(cur, actor, now)
			if err != nil {
				return err
			}
			if !final {
				return conflict("id", "request %s changed while being approved; try again", id)
			}
			cur.State, cur.DecidedAt, cur.DecidedBy = ApprovalApproved, now, actor.Principal
			if err := tx.DeleteObject(ctx, KindPending, id); err != nil {
				return err
			}
			if err := tx.PutObject(ctx, KindDecided, id, cur); err != nil {
				return err
			}
			decided = cur
			return s.auditTx(ctx, tx, actor, AuditRequestApprove, firstVM(cur.Request), fmt.Sprintf("request %s: approval %d, request opened", id, len(cur.Approvals)), nil, cur.Approvals[len(cur.Approvals)-1], now)
		},
	})
	if err != nil {
		return Request{}, p, err
	}
	return req, decided, nil
}

// approvalStep makes initiate open an approved request: keep its ID, skip
// the approval check, and run finish in the opening transaction.
type approvalStep struct {
	id       string
	approver Actor // who gave the last approval
	finish   func(tx Tx, now time.Time) error
}

// Deny ends a pending request: its grants never open.
func (s *Service) Deny(ctx context.Context, actor Actor, id, reason string) (PendingRequest, error) {
	now := s.clock.Now().UTC()
	if len(reason) > 1024 {
		return PendingRequest{}, invalid("reason", "reason is longer than 1024 characters")
	}
	var out PendingRequest
	err := s.store.InTx(ctx, func(tx Tx) error {
		out = PendingRequest{} // fn may run more than once
		p, isPending, err := getPending(ctx, tx, id)
		if err != nil {
			return err
		}
		if !isPending {
			return conflict("id", "request %s is already %s", id, p.State)
		}
		if err := checkApprover(p, actor, now); err != nil {
			return err
		}
		out, err = s.decide(ctx, tx, actor, p, ApprovalDenied, ReasonDenied, reason, now)
		return err
	})
	return out, err
}

func (s *Service) decide(ctx context.Context, tx Tx, actor Actor, p PendingRequest, state string, reason Reason, why string, now time.Time) (PendingRequest, error) {
	before := p
	p.State, p.DecidedAt, p.DecidedBy, p.Reason = state, now, actor.Principal, why
	for i := range p.Request.Grants {
		p.Request.Grants[i].Status, p.Request.Grants[i].StatusReason, p.Request.Grants[i].EndedAt = StatusRevoked, reason, now
	}
	if err := tx.DeleteObject(ctx, KindPending, p.Request.ID); err != nil {
		return p, err
	}
	if err := tx.PutObject(ctx, KindDecided, p.Request.ID, p); err != nil {
		return p, err
	}
	s.events.addGrants(tx, EventDenied, actor, p.Request.Requestor, p.Request.Grants, reason, why, now)
	op := AuditRequestDeny
	if state == ApprovalLapsed {
		op = AuditRequestLapse
	}
	detail := fmt.Sprintf("request %s %s", p.Request.ID, strings.ToLower(state))
	if why != "" {
		detail += ": " + why
	}
	return p, s.auditTx(ctx, tx, actor, op, firstVM(p.Request), detail, before.State, p.State, now)
}

// LapseDue ends pending requests whose approval timeout has passed.
func (s *Service) LapseDue(ctx context.Context) (int, error) {
	now := s.clock.Now().UTC()
	n := 0
	err := s.store.InTx(ctx, func(tx Tx) error {
		n = 0
		ps, err := listPending(ctx, tx)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if now.Before(p.LapseAt) {
				continue
			}
			if _, err := s.decide(ctx, tx, Actor{Principal: SystemPrincipal}, p, ApprovalLapsed, ReasonApprovalLapsed, "not decided within the approval timeout", now); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// nextLapse returns the earliest lapse time of a pending request.
func (s *Service) nextLapse(ctx context.Context) (time.Time, bool, error) {
	ps, err := s.ListPendingRequests(ctx)
	if err != nil || len(ps) == 0 {
		return time.Time{}, false, err
	}
	t := ps[0].LapseAt
	for _, p := range ps[1:] {
		if p.LapseAt.Before(t) {
			t = p.LapseAt
		}
	}
	return t, true, nil
}

func firstVM(r Request) string {
	if vms := requestVMs(r); len(vms) > 0 {
		return vms[0]
	}
	return r.PolicyID
}
