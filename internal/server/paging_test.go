package server_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// TestListEndpointsPage: every drawbridge/v1 list answers at most $top
// items and a nextLink to the rest, which ends; bad $top or $skipToken is
// 400 naming it.
func TestListEndpointsPage(t *testing.T) {
	e := startAuthServer(t)
	e.seed()
	for _, path := range []string{"/drawbridge/v1/vms", "/drawbridge/v1/grants", "/drawbridge/v1/requests/pending", "/drawbridge/v1/audit", "/drawbridge/v1/audit/checkpoints"} {
		var whole struct{ Value []json.RawMessage }
		if err := json.Unmarshal(e.must(e.admin, "GET", path, nil, 200), &whole); err != nil {
			t.Fatal(err)
		}
		var got []json.RawMessage
		next, pages := path+"?$top=2", 0
		for next != "" {
			if pages++; pages > 100 {
				t.Fatalf("%s: nextLink never ends", path)
			}
			var page struct {
				Value    []json.RawMessage
				NextLink string
			}
			if err := json.Unmarshal(e.must(e.admin, "GET", next, nil, 200), &page); err != nil {
				t.Fatal(err)
			}
			if len(page.Value) > 2 {
				t.Fatalf("%s: page of %d items, want at most $top=2", next, len(page.Value))
			}
			got = append(got, page.Value...)
			next = ""
			if page.NextLink != "" {
				u, err := url.Parse(page.NextLink)
				if err != nil || u.Host == "" || !strings.Contains(u.RawQuery, "%24top=2") {
					t.Fatalf("%s: nextLink %q is not an absolute link keeping $top", path, page.NextLink)
				}
				next = u.RequestURI()
			}
		}
		if path != "/drawbridge/v1/audit/checkpoints" && len(whole.Value) < 2 {
			t.Fatalf("%s: only %d items; the test needs several pages", path, len(whole.Value))
		}
		// Successful reads are not audited: both listings see the same items.
		if len(got) != len(whole.Value) {
			t.Errorf("%s: %d items over pages, %d at once", path, len(got), len(whole.Value))
		}
		for _, bad := range []string{"?$top=0", "?$top=5001", "?$top=x", "?$skipToken=zz"} {
			st, code, body := e.call(e.admin, "GET", path+bad, nil)
			if st != 400 || code != "BadRequest" || !strings.Contains(string(body), "$") {
				t.Errorf("%s%s: %d %s, want 400 naming the parameter", path, bad, st, body)
			}
		}
	}
}
