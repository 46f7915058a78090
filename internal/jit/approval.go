package jit

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
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
	// Reason is why the approver agreed (approve --reason), if given.
	Reason string `json:"reason,omitempty"`
}

// PendingRequest is a request that needed approval, with its approval
// record: the request row and its grant rows, whose IDs stay the same from
// the moment the request is made. While it is Pending its grants have
// status Pending (never active); each one's EndTime-StartTime is the
// duration asked for, which starts counting when the request is approved.
type PendingRequest struct {
	Request Request `json:"request"`
	ApprovalRecord
}

// ApprovalRecord is the approval bookkeeping of a request that needs
// approval; stores keep it on the request's row (Tx.PutApproval).
type ApprovalRecord struct {
	Rules     []ApprovalRule `json:"rules"`
	Approvals []Approval     `json:"approvals"`
	State     string         `json:"state"`
	LapseAt   time.Time      `json:"lapseAt"`
	DecidedAt time.Time      `json:"decidedAt,omitzero"`
	DecidedBy string         `json:"decidedBy,omitempty"`
	Reason    string         `json:"reason,omitempty"`
}

// InUTC returns a with its times in UTC (see Grant.InUTC).
func (a ApprovalRecord) InUTC() ApprovalRecord {
	a.LapseAt, a.DecidedAt = utc(a.LapseAt), utc(a.DecidedAt)
	a.Approvals = slices.Clone(a.Approvals)
	for i := range a.Approvals {
		a.Approvals[i].Time = utc(a.Approvals[i].Time)
	}
	return a
}

// Opened reports whether a request in approval state state (empty: it
// needed no approval) has opened, so that it is listed among its
// policy's requests (Tx.ListRequests).
func Opened(state string) bool { return state == "" || state == ApprovalApproved }

func hasGroup(groups []string, g string) bool {
	return slices.ContainsFunc(groups, func(have string) bool { return strings.EqualFold(have, g) })
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
	return slices.SortedFunc(maps.Values(byGroup), func(a, b ApprovalRule) int {
		return strings.Compare(strings.ToLower(a.Approvers), strings.ToLower(b.Approvers))
	})
}

func describeRules(rules []ApprovalRule) string {
	var parts []string
	for _, r := range rules {
		parts = append(parts, fmt.Sprintf("%d of group %q", r.Count, r.Approvers))
	}
	return strings.Join(parts, " and ")
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
	if slices.ContainsFunc(p.Rules, func(r ApprovalRule) bool { return hasGroup(actor.Groups, r.Approvers) }) {
		return nil
	}
	return forbidden("id", "%s is not a member of an approver group of request %s (%s)", actor.Principal, p.Request.ID, describeRules(p.Rules))
}

// addApproval checks actor and appends their approval; final says whether
// every rule is now satisfied. Group membership is the approver's at the
// time of approving, recorded in the approval.
func addApproval(p PendingRequest, actor Actor, now time.Time) (PendingRequest, bool, error) {
	if err := checkApprover(p, actor, now); err != nil {
		return p, false, err
	}
	if slices.ContainsFunc(p.Approvals, func(a Approval) bool { return strings.EqualFold(a.Principal, actor.Principal) }) {
		return p, false, conflict("id", "%s has already approved request %s", actor.Principal, p.Request.ID)
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

// nextLapse returns the earliest lapse time of a pending request.
func (s *Service) nextLapse(ctx context.Context) (time.Time, bool, error) {
	ps, err := s.ListPendingRequests(ctx)
	if err != nil || len(ps) == 0 {
		return time.Time{}, false, err
	}
	first := slices.MinFunc(ps, func(a, b PendingRequest) int { return a.LapseAt.Compare(b.LapseAt) })
	return first.LapseAt, true, nil
}

func firstVM(r Request) string {
	if vms := requestVMs(r); len(vms) > 0 {
		return vms[0]
	}
	return r.PolicyID
}
