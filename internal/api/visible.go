package api

import (
	"net/http"
	"strings"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// visibleFunc says whether one item of a listing (named by its resource
// ID) may be shown to the caller; nil means every item may.
type visibleFunc func(target string) bool

func (v visibleFunc) shows(target string) bool { return v == nil || v(target) }

// visible authorizes a listing of scope for op. A caller allowed at scope
// sees everything in it; a caller whose roles stop below it (a requester
// at one resource group listing "/") sees the items op allows on them,
// one by one, rather than a 403. Agent tokens and authorizer failures
// answer as authorize does, and false is returned.
func (s *Server) visible(w http.ResponseWriter, p rbac.Principal, op rbac.Operation, scope string) (visibleFunc, bool) {
	all, err := rbac.Allowed(s.cfg.Authorizer, p, op, scope)
	if isAgent, _ := agentCheck(w, op, resource.Root); all || err != nil || isAgent {
		// Allowed at scope, an agent token or a failure: authorize
		// answers (and keeps the refusal bookkeeping) as for any call.
		return nil, s.authorize(w, p, op, scope)
	}
	cache := map[string]bool{}
	return func(target string) bool {
		k := strings.ToLower(target)
		if v, ok := cache[k]; ok {
			return v
		}
		ok, err := rbac.Allowed(s.cfg.Authorizer, p, op, target)
		if err != nil {
			s.cfg.Logger.Error("authorization failed", "op", op, "target", target, "err", err)
		}
		cache[k] = ok
		return ok
	}, true
}

// visibleToAll reports whether every VM of a request passes v.
func visibleToAll(v visibleFunc, rq jit.Request) bool {
	if len(rq.Grants) == 0 {
		return false
	}
	for _, g := range rq.Grants {
		if !v.shows(g.VMID) {
			return false
		}
	}
	return true
}

// filterGrants keeps the grants v shows, at most limit of them (0: all).
func filterGrants(gs []jit.Grant, v visibleFunc, limit int) []jit.Grant {
	out := gs[:0]
	for _, g := range gs {
		if limit > 0 && len(out) == limit {
			break
		}
		if v.shows(g.VMID) {
			out = append(out, g)
		}
	}
	return out
}

// filterPolicies keeps the policies v shows (by policy ID: a role at the
// policy's resource group or above).
func filterPolicies(ps []jit.Policy, v visibleFunc) []jit.Policy {
	if v == nil {
		return ps
	}
	out := ps[:0]
	for _, p := range ps {
		if v(p.ID) {
			out = append(out, p)
		}
	}
	return out
}

// pendingVisible keeps the pending requests whose every VM the caller may
// read the JIT status of, or approve (an approver by group at a
// subscription sees what waits for them there), as the console does.
func (s *Server) pendingVisible(p rbac.Principal, ps []jit.PendingRequest, read visibleFunc) []jit.PendingRequest {
	approve := func(vm string) bool {
		ok, err := rbac.Allowed(s.cfg.Authorizer, p, rbac.OpApprove, vm)
		if err != nil {
			s.cfg.Logger.Error("authorization failed", "op", rbac.OpApprove, "target", vm, "err", err)
		}
		return ok
	}
	out := ps[:0]
	for _, pr := range ps {
		if visibleToAll(read, pr.Request) || visibleToAll(approve, pr.Request) {
			out = append(out, pr)
		}
	}
	return out
}

// GrantView is a grant as listings show it: with who asked for it.
type GrantView struct {
	jit.Grant
	Requestor string `json:"requestor,omitempty"`
}

// grantViews names the requestor of each grant.
func (s *Server) grantViews(r *http.Request, gs []jit.Grant) ([]GrantView, error) {
	who, err := s.cfg.Service.Requestors(r.Context(), gs)
	if err != nil {
		return nil, err
	}
	out := make([]GrantView, len(gs))
	for i, g := range gs {
		out[i] = GrantView{Grant: g, Requestor: who[g.RequestID]}
	}
	return out, nil
}

// ownGrant reports whether g is the caller's own (they made its request)
// and they may still request access to its VM: ending one's own access
// early needs no write on the policy, since it never widens access.
func (s *Server) ownGrant(w http.ResponseWriter, r *http.Request, p rbac.Principal, g jit.Grant) bool {
	if isAgent, _ := agentCheck(w, rbac.OpRevoke, resource.Root); isAgent {
		return false
	}
	who, err := s.cfg.Service.Requestors(r.Context(), []jit.Grant{g})
	if err != nil || !strings.EqualFold(who[g.RequestID], p.Name) || p.Name == "" {
		return false
	}
	ok, _ := rbac.Allowed(s.cfg.Authorizer, p, rbac.OpInitiate, g.VMID)
	return ok
}
