package api

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// TokenCreateRequest is POST /drawbridge/v1/tokens.
type TokenCreateRequest struct {
	Principal string `json:"principal"`
	Expires   string `json:"expires,omitempty"` // 30d, 12h, 90m, P30D; empty: never
	AgentVM   string `json:"agentVm,omitempty"` // makes an agent token for this VM
	// Groups the principal is in, for group role assignments and approvals.
	Groups []string `json:"groups,omitempty"`
}

// TokenCreateResponse carries the plaintext token, shown this once.
type TokenCreateResponse struct {
	Token  string           `json:"token"`
	Record access.TokenInfo `json:"record"`
}

// AssignmentBody is a role assignment as sent and returned.
type AssignmentBody struct {
	ID            string             `json:"id,omitempty"`
	Role          string             `json:"roleDefinitionName"`
	Principal     string             `json:"principalName"`
	PrincipalType rbac.PrincipalType `json:"principalType"`
	Scope         string             `json:"scope"`
}

// DenyRequest is the body of POST /drawbridge/v1/requests/{id}/deny and
// /approve: why (optional), kept in the audit log.
type DenyRequest struct {
	Reason string `json:"reason,omitempty"`
}

// ApprovalResponse is the answer to approve and deny: the pending request
// and, once the last approval opened it, the request with its grants.
type ApprovalResponse struct {
	Pending jit.PendingRequest `json:"pending"`
	Opened  *RequestResource   `json:"opened,omitempty"`
}

func (s *Server) accessRoutes() {
	m := s.mux
	m.HandleFunc("GET /drawbridge/v1/requests/pending", s.listPending)
	m.HandleFunc("GET /drawbridge/v1/requests/{id}", s.getPending)
	m.HandleFunc("POST /drawbridge/v1/requests/{id}/approve", s.approve)
	m.HandleFunc("POST /drawbridge/v1/requests/{id}/deny", s.deny)
	if s.cfg.Access == nil {
		return
	}
	m.HandleFunc("GET /drawbridge/v1/tokens", s.listTokens)
	m.HandleFunc("POST /drawbridge/v1/tokens", s.createToken)
	m.HandleFunc("POST /drawbridge/v1/tokens/{id}/revoke", s.revokeToken)
	m.HandleFunc("GET /drawbridge/v1/roles", s.listRoles)
	m.HandleFunc("GET /drawbridge/v1/roles/{name}", s.getRole)
	m.HandleFunc("POST /drawbridge/v1/roles", s.createRole)
	m.HandleFunc("GET /drawbridge/v1/roleAssignments", s.listAssignments)
	m.HandleFunc("POST /drawbridge/v1/roleAssignments", s.assign)
	m.HandleFunc("DELETE /drawbridge/v1/roleAssignments/{id}", s.unassign)
	m.HandleFunc("GET /drawbridge/v1/audit", s.listAudit)
	m.HandleFunc("GET /drawbridge/v1/audit/verify", s.verifyAudit)
	m.HandleFunc("GET /drawbridge/v1/audit/checkpoints", s.listCheckpoints)
	m.HandleFunc("GET /drawbridge/v1/audit/checkpoints/latest", s.latestCheckpoint)
}

func (s *Server) writeAccessError(w http.ResponseWriter, r *http.Request, err error) {
	s.writeServiceError(w, r, err) // access's errors are jit's
}

// ParseExpiry accepts "30d", Go durations ("12h") and ISO 8601 ("P30D",
// "PT12H"); "" is 0 (never).
func ParseExpiry(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok && !strings.HasPrefix(strings.ToUpper(s), "P") {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 || n > 3650 {
			return 0, errors.New("expires: " + strconv.Quote(s) + " is not a number of days between 1 and 3650")
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := jit.ParseDuration(s) // Go syntax or ISO 8601 (P30D, PT12H), as every duration
	if err != nil || d <= 0 {
		return 0, errors.New("expires: " + strconv.Quote(s) + " is not a positive duration (30d, 12h, 90m, P30D)")
	}
	return d, nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	principal, actor, ok := s.caller(w, r)
	if !ok || !s.authorize(w, principal, rbac.OpTokenAdmin, "/") {
		return
	}
	var in TokenCreateRequest
	if !decode(w, r, &in) {
		return
	}
	ttl, err := ParseExpiry(in.Expires)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "expires", err.Error())
		return
	}
	p := auth.IssueParams{Principal: in.Principal, TTL: ttl}
	if in.AgentVM != "" {
		p.Kind, p.VMID = auth.KindAgent, in.AgentVM
	}
	plain, tok, err := s.cfg.Access.CreateToken(r.Context(), actor, p, in.Groups)
	if err != nil {
		s.writeAccessError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, TokenCreateResponse{Token: plain, Record: tok})
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok || !s.authorize(w, principal, rbac.OpTokenAdmin, "/") {
		return
	}
	ts, err := s.cfg.Access.ListTokens(r.Context())
	if err != nil {
		s.writeAccessError(w, r, err)
		return
	}
	if ts == nil {
		ts = []access.TokenInfo{}
	}
	writeJSON(w, http.StatusOK, ListResponse[access.TokenInfo]{Value: ts})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	principal, actor, ok := s.caller(w, r)
	if !ok || !s.authorize(w, principal, rbac.OpTokenAdmin, "/") {
		return
	}
	t, err := s.cfg.Access.RevokeToken(r.Context(), actor, r.PathValue("id"))
	if err != nil {
		s.writeAccessError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) listRoles(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok || !s.authorize(w, principal, rbac.OpRoleRead, "/") {
		return
	}
	rs, err := s.cfg.Access.Roles(r.Context())
	if err != nil {
		s.writeAccessError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ListResponse[rbac.RoleDefinition]{Value: rs})
}

func (s *Server) getRole(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok || !s.authorize(w, principal, rbac.OpRoleRead, "/") {
		return
	}
	p, err := s.cfg.Access.Policy(r.Context())
	if err != nil {
		s.writeAccessError(w, r, err)
		return
	}
	role := p.Role(r.PathValue("name"))
	if role == nil {
		writeError(w, http.StatusNotFound, "NotFound", "name", "no role named "+strconv.Quote(r.PathValue("name")))
		return
	}
	writeJSON(w, http.StatusOK, role)
}

func (s *Server) createRole(w http.ResponseWriter, r *http.Request) {
	principal, actor, ok := s.caller(w, r)
	if !ok || !s.authorize(w, principal, rbac.OpRoleWrite, "/") {
		return
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequestContent", "", "request body: "+describeJSONError(err))
		return
	}
	role, err := rbac.ParseRoleDefinition(data)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRoleDefinition", "", err.Error())
		return
	}
	// Creating a role usable at a scope needs role writes at that scope.
	for _, sc := range role.AssignableScopes {
		if !s.authorize(w, principal, rbac.OpRoleWrite, sc.String()) {
			return
		}
	}
	role, err = s.cfg.Access.CreateRole(r.Context(), actor, role)
	if err != nil {
		s.writeAccessError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, role)
}

func assignmentBody(a rbac.Assignment) AssignmentBody {
	return AssignmentBody{ID: a.ID, Role: a.Role, Principal: a.Principal, PrincipalType: a.PrincipalType, Scope: a.Scope.String()}
}

func (s *Server) listAssignments(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok || !s.authorize(w, principal, rbac.OpRoleRead, "/") {
		return
	}
	as, err := s.cfg.Access.Assignments(r.Context())
	if err != nil {
		s.writeAccessError(w, r, err)
		return
	}
	out := ListResponse[AssignmentBody]{Value: []AssignmentBody{}}
	for _, a := range as {
		out.Value = append(out.Value, assignmentBody(a))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) assign(w http.ResponseWriter, r *http.Request) {
	principal, actor, ok := s.caller(w, r)
	if !ok {
		return
	}
	var in AssignmentBody
	if !decode(w, r, &in) {
		return
	}
	scope, err := resource.Parse(in.Scope)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "scope", "scope: "+err.Error())
		return
	}
	if !s.authorize(w, principal, rbac.OpRoleWrite, scope.String()) {
		return
	}
	if in.PrincipalType == "" {
		in.PrincipalType = rbac.PrincipalUser
	}
	a, err := s.cfg.Access.Assign(r.Context(), actor, rbac.Assignment{Role: in.Role, Principal: in.Principal, PrincipalType: in.PrincipalType, Scope: scope})
	if err != nil {
		s.writeAccessError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, assignmentBody(a))
}

func (s *Server) unassign(w http.ResponseWriter, r *http.Request) {
	principal, actor, ok := s.caller(w, r)
	if !ok {
		return
	}
	a, err := s.cfg.Access.GetAssignment(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeAccessError(w, r, err)
		return
	}
	if !s.authorize(w, principal, rbac.OpRoleWrite, a.Scope.String()) {
		return
	}
	if err := s.cfg.Access.Unassign(r.Context(), actor, a.ID); err != nil {
		s.writeAccessError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, assignmentBody(a))
}
