package api

import (
	"net/http"
	"net/url"
	"strconv"
)

// List endpoints of drawbridge/v1 answer a page at a time, as Azure does:
// ListResponse.Value holds at most $top items (default DefaultPageSize,
// at most MaxPageSize) and NextLink, when there is more, is the URL of the
// next page (the same query with $skipToken set). Clients follow NextLink
// until it is absent.
const (
	DefaultPageSize = 1000
	MaxPageSize     = 5000
)

// pageSize reads $top: the page size asked for (400 naming $top if it is
// not a number from 1 to MaxPageSize).
func pageSize(w http.ResponseWriter, q url.Values) (int, bool) {
	v := q.Get("$top")
	if v == "" {
		return DefaultPageSize, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxPageSize {
		writeError(w, http.StatusBadRequest, "BadRequest", "$top", "$top must be an integer from 1 to "+strconv.Itoa(MaxPageSize))
		return 0, false
	}
	return n, true
}

// absoluteURL is the URL of r's path with query q, absolute as the client
// reached it: the connection's scheme and Host, or, from a trusted proxy,
// the X-Forwarded-Proto and X-Forwarded-Host it set (a TLS front ends TLS,
// so the connection alone would say http and the proxy's backend host).
// Every nextLink is made here.
func (s *Server) absoluteURL(r *http.Request, q url.Values) string {
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if s.fromTrustedProxy(r) {
		if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
			scheme = p
		}
		if h := r.Header.Get("X-Forwarded-Host"); h != "" {
			host = h
		}
	}
	u := url.URL{Scheme: scheme, Host: host, Path: r.URL.Path, RawQuery: q.Encode()}
	return u.String()
}

// pageLink returns the URL of the page at token: r's query with
// $skipToken set to token.
func (s *Server) pageLink(r *http.Request, token string) string {
	q := r.URL.Query()
	q.Set("$skipToken", token)
	return s.absoluteURL(r, q)
}

// pageOf returns the page of items at r's $skipToken (an offset into
// items, which the handler lists in a stable order) and its nextLink;
// false when it answered 400 for a bad $top or $skipToken.
func pageOf[T any](s *Server, w http.ResponseWriter, r *http.Request, items []T) (ListResponse[T], bool) {
	q := r.URL.Query()
	size, ok := pageSize(w, q)
	if !ok {
		return ListResponse[T]{}, false
	}
	off := 0
	if v := q.Get("$skipToken"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "BadRequest", "$skipToken", "$skipToken is not one this server made; follow nextLink as given")
			return ListResponse[T]{}, false
		}
		off = min(n, len(items))
	}
	end := min(off+size, len(items))
	out := ListResponse[T]{Value: items[off:end]}
	if out.Value == nil {
		out.Value = []T{}
	}
	if end < len(items) {
		out.NextLink = s.pageLink(r, strconv.Itoa(end))
	}
	return out, true
}
