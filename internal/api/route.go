package api

import "net/http"

// Route returns the pattern of the route that serves r ("" when none
// does), for metric labels and logs: bounded, unlike the raw path.
func (s *Server) Route(r *http.Request) string {
	u := *r.URL
	u.Path, u.RawPath = canonicalPath(u.Path), ""
	r2 := *r
	r2.URL = &u
	_, pattern := s.mux.Handler(&r2)
	return pattern
}

// CanonicalPath is the path as the API routes it: Azure's fixed segments
// in one spelling (resourcegroups → resourceGroups).
func CanonicalPath(p string) string { return canonicalPath(p) }
