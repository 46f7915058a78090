package api

import (
	"fmt"
	"net/http"
	"strings"
)

// route dispatches to the mux, answering what the mux would answer in
// plain text or with a bodyless redirect in Azure's error envelope instead:
// a path with ".", ".." or empty segments is a 400 (the mux would redirect
// to the cleaned path, a different resource than the one named); an
// unknown route is a 404 and a known route with the wrong method a 405
// (with Allow).
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if seg, ok := badSegment(r.URL.Path); ok {
		writeError(w, http.StatusBadRequest, "InvalidPath", "path", fmt.Sprintf("the path has a %q segment; send the canonical path", seg))
		return
	}
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r) // which sets the path values Handler does not
		return
	}
	// The mux's own answer, captured to learn which it is.
	c := &statusOnly{header: http.Header{}}
	h.ServeHTTP(c, r)
	switch c.status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", c.header.Get("Allow"))
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "", fmt.Sprintf("method %s is not allowed here; allowed: %s", boundedText(r.Method), c.header.Get("Allow")))
	default:
		writeError(w, http.StatusNotFound, "NotFound", "", fmt.Sprintf("no API route %s %s", boundedText(r.Method), boundedText(r.URL.Path)))
	}
}

// badSegment returns the first ".", ".." or empty inner segment of p.
func badSegment(p string) (string, bool) {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, seg := range segs {
		if seg == "." || seg == ".." || (seg == "" && i < len(segs)-1) {
			return seg, true
		}
	}
	return "", false
}

// boundedText is s cut to a prefix short enough to echo in an error.
func boundedText(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// statusOnly is a ResponseWriter that keeps the status and headers and
// drops the body.
type statusOnly struct {
	header http.Header
	status int
}

func (c *statusOnly) Header() http.Header { return c.header }
func (c *statusOnly) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
}
func (c *statusOnly) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return len(b), nil
}
