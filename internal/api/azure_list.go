package api

import (
	"encoding/base64"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

// DefaultAzurePageSize is how many policies one page of Azure's list calls
// holds when Config.AzurePageSize is not set. Each policy carries its
// recent requests, so pages are kept modest.
const DefaultAzurePageSize = 100

// listPolicies is Azure's four list calls (subscription or resource group,
// with or without a location). It answers one page, policies in ID order,
// and a nextLink (an absolute URL, as ARM gives and the SDKs follow) while
// more remain. The page token is the last ID answered, so a policy added
// or deleted between pages neither repeats nor hides another.
func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request) {
	if !checkAPIVersion(w, r) {
		return
	}
	after, ok := skipToken(w, r)
	if !ok {
		return
	}
	scope := "/subscriptions/" + r.PathValue("sub")
	if rg := r.PathValue("rg"); rg != "" {
		scope += "/resourceGroups/" + rg
	}
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	v, ok := s.visible(w, principal, rbac.OpPolicyList, scope)
	if !ok {
		return
	}
	ps, err := s.cfg.Service.ListPolicies(r.Context(), scope, r.PathValue("loc"))
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	ps = filterPolicies(ps, v)
	key := func(p jit.Policy) string { return strings.ToLower(p.ID) }
	slices.SortFunc(ps, func(a, b jit.Policy) int { return strings.Compare(key(a), key(b)) })
	start, _ := slices.BinarySearchFunc(ps, after, func(p jit.Policy, k string) int {
		if key(p) <= k {
			return -1
		}
		return 1
	})
	size := s.cfg.AzurePageSize
	if size <= 0 {
		size = DefaultAzurePageSize
	}
	end := min(start+size, len(ps))
	out := ListResponse[PolicyResource]{Value: []PolicyResource{}}
	for _, p := range ps[start:end] {
		res, err := s.policyResource(r, p)
		if err != nil {
			s.writeServiceError(w, r, err)
			return
		}
		out.Value = append(out.Value, res)
	}
	if end < len(ps) {
		out.NextLink = s.nextLink(r, key(ps[end-1]))
	}
	writeJSON(w, http.StatusOK, out)
}

// skipToken reads the $skipToken of a nextLink: the last ID of the page
// before, encoded. A token drawbridge did not make is a 400.
func skipToken(w http.ResponseWriter, r *http.Request) (string, bool) {
	t := r.URL.Query().Get("$skipToken")
	if t == "" {
		return "", true
	}
	b, err := base64.RawURLEncoding.DecodeString(t)
	if err != nil || !strings.HasPrefix(string(b), "/subscriptions/") {
		writeError(w, http.StatusBadRequest, "InvalidSkipToken", "$skipToken", "$skipToken is not a page token from a nextLink of this list")
		return "", false
	}
	return string(b), true
}

// nextLink is the absolute URL of the page after the one ending at lastKey:
// the same path and api-version, absolute as the client reached it
// (absoluteURL).
func (s *Server) nextLink(r *http.Request, lastKey string) string {
	q := url.Values{"$skipToken": {base64.RawURLEncoding.EncodeToString([]byte(lastKey))}}
	if v := r.URL.Query().Get("api-version"); v != "" {
		q.Set("api-version", v)
	}
	return s.absoluteURL(r, q)
}

// fromTrustedProxy reports whether the peer is one of the trusted proxies.
func (s *Server) fromTrustedProxy(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	for _, tp := range s.cfg.TrustedProxies {
		if tp.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}
