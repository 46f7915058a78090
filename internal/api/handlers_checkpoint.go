package api

import (
	"net/http"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

// listCheckpoints is GET /drawbridge/v1/audit/checkpoints: the signed
// checkpoints of the audit log in seq order, a page at a time.
func (s *Server) listCheckpoints(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok || !s.authorize(w, principal, rbac.OpAuditRead, "/") {
		return
	}
	cps, err := s.cfg.Access.Checkpoints(r.Context())
	if err != nil {
		s.writeAccessError(w, r, err)
		return
	}
	if cps == nil {
		cps = []audit.Checkpoint{}
	}
	if page, ok := pageOf(s, w, r, cps); ok {
		writeJSON(w, http.StatusOK, page)
	}
}

// latestCheckpoint is GET /drawbridge/v1/audit/checkpoints/latest: the
// newest signed chain head (404 before the first).
func (s *Server) latestCheckpoint(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok || !s.authorize(w, principal, rbac.OpAuditRead, "/") {
		return
	}
	c, found, err := s.cfg.Access.LatestCheckpoint(r.Context())
	if err != nil {
		s.writeAccessError(w, r, err)
		return
	}
	if !found {
		writeError(w, http.StatusNotFound, "NotFound", "", "the audit log has no signed checkpoint yet (the server signs one every few records or seconds, and when it stops)")
		return
	}
	writeJSON(w, http.StatusOK, c)
}
