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

// nextLink returns the URL of the page at token: r's URL (absolute, as
// the client reached it) with $skipToken set to token.
func nextLink(r *http.Request, token string) string {
	q := r.URL.Query()
	q.Set("$skipToken", token)
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawQuery: q.Encode()}
	return u.String()
}

// pageOf returns the page of items at r's $skipToken (an offset into
// items, which the handler lists in a stable order) and its nextLink;
// false when it answered 400 for a bad $top or $skipToken.
func pageOf[T any](w http.ResponseWriter, r *http.Request, items []T) (ListResponse[T], bool) {
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
		out.NextLink = nextLink(r, strconv.Itoa(end))
	}
	return out, true
}
