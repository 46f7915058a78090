package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

// listAudit is GET /drawbridge/v1/audit?since=RFC3339&principal=&vm=&limit=,
// a page ($top, $skipToken) at a time; limit selects the newest records.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := auditstore.Filter{Principal: q.Get("principal"), Target: q.Get("vm")}
	target := "/"
	if f.Target != "" {
		target = f.Target
	}
	if !s.authorize(w, principal, rbac.OpAuditRead, target) {
		return
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "BadRequest", "since", "since "+strconv.Quote(v)+" is not an RFC 3339 time")
			return
		}
		f.Since = t
	}
	if f.Limit, ok = queryLimit(w, q); !ok {
		return
	}
	size, ok := pageSize(w, q)
	if !ok {
		return
	}
	var cur *auditstore.Cursor
	if v := q.Get("$skipToken"); v != "" {
		c, err := auditstore.ParseCursor(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "BadRequest", "$skipToken", err.Error()+"; follow nextLink as given")
			return
		}
		cur = &c
	}
	recs, next, err := s.cfg.Access.AuditPage(r.Context(), f, cur, size)
	if err != nil {
		s.writeAccessError(w, r, err)
		return
	}
	if recs == nil {
		recs = []audit.Record{}
	}
	out := ListResponse[audit.Record]{Value: recs}
	if next != nil {
		out.NextLink = s.pageLink(r, next.String())
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok || !s.authorize(w, principal, rbac.OpAuditRead, "/") {
		return
	}
	rep, err := s.cfg.Access.VerifyAuditWithKey(r.Context(), s.cfg.AuditPublicKey)
	if err != nil {
		s.writeAccessError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
