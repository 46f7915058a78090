package api

import (
	"net/http"
	"strings"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

// listPending is GET /drawbridge/v1/requests/pending: the requests awaiting
// approval that the caller may see.
func (s *Server) listPending(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	v, ok := s.visible(w, principal, rbac.OpGrantsList, "/")
	if !ok {
		return
	}
	ps, err := s.cfg.Service.ListPendingRequests(r.Context())
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	if v != nil {
		ps = s.pendingVisible(principal, ps, v)
	}
	if page, ok := pageOf(s, w, r, ps); ok {
		writeJSON(w, http.StatusOK, page)
	}
}

// pendingFor loads a pending request and authorizes op on each of its VMs.
func (s *Server) pendingFor(w http.ResponseWriter, r *http.Request, op rbac.Operation) (jit.PendingRequest, rbac.Principal, jit.Actor, bool) {
	principal, actor, ok := s.caller(w, r)
	if !ok {
		return jit.PendingRequest{}, principal, actor, false
	}
	p, err := s.cfg.Service.GetPendingRequest(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeServiceError(w, r, err)
		return p, principal, actor, false
	}
	seen := map[string]bool{}
	for _, g := range p.Request.Grants {
		if seen[strings.ToLower(g.VMID)] {
			continue
		}
		seen[strings.ToLower(g.VMID)] = true
		if !s.authorize(w, principal, op, g.VMID) {
			return p, principal, actor, false
		}
	}
	return p, principal, actor, true
}

func (s *Server) getPending(w http.ResponseWriter, r *http.Request) {
	p, _, _, ok := s.pendingFor(w, r, rbac.OpGrantsList)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) approve(w http.ResponseWriter, r *http.Request) {
	_, _, actor, ok := s.pendingFor(w, r, rbac.OpApprove)
	if !ok {
		return
	}
	var in DenyRequest // the same optional {"reason"}
	if r.ContentLength != 0 && !decode(w, r, &in) {
		return
	}
	p, opened, err := s.cfg.Service.ApproveWithReason(r.Context(), actor, r.PathValue("id"), in.Reason)
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	out := ApprovalResponse{Pending: p}
	if opened.ID != "" {
		rr := requestResource(opened)
		out.Opened = &rr
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) deny(w http.ResponseWriter, r *http.Request) {
	_, _, actor, ok := s.pendingFor(w, r, rbac.OpApprove)
	if !ok {
		return
	}
	var in DenyRequest
	if r.ContentLength != 0 && !decode(w, r, &in) {
		return
	}
	p, err := s.cfg.Service.Deny(r.Context(), actor, r.PathValue("id"), in.Reason)
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ApprovalResponse{Pending: p})
}
