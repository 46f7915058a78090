package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
)

// tlsFront is a TLS-terminating reverse proxy in front of backend, which
// sets X-Forwarded-For/Host/Proto as nginx or Caddy would.
func tlsFront(t *testing.T, backend string) *httptest.Server {
	t.Helper()
	to, _ := url.Parse(backend)
	front := httptest.NewTLSServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(to)
		pr.SetXForwarded()
	}})
	t.Cleanup(front.Close)
	return front
}

func getVMPage(t *testing.T, c *http.Client, link string) api.ListResponse[api.VMSummary] {
	t.Helper()
	resp, err := c.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", link, resp.StatusCode, data)
	}
	var out api.ListResponse[api.VMSummary]
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Behind a trusted TLS front, the nextLink of drawbridge's own lists and
// of Azure's policy list both point at the front (https, its host), so a
// client can follow them; the backend's own address is never given out.
// From an untrusted peer the forwarded headers are ignored.
func TestNextLinkBehindTrustedTLSFront(t *testing.T) {
	backend := listServer(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	front := tlsFront(t, backend.URL)
	c := front.Client()

	link := front.URL + "/drawbridge/v1/vms?$top=1"
	var names []string
	for pages := 0; link != ""; pages++ {
		if pages > 10 {
			t.Fatal("nextLink never ends")
		}
		page := getVMPage(t, c, link)
		for _, vm := range page.Value {
			names = append(names, vm.Name)
		}
		if page.NextLink != "" && !strings.HasPrefix(page.NextLink, front.URL+"/drawbridge/v1/vms?") {
			t.Fatalf("nextLink %q does not point at the TLS front %s", page.NextLink, front.URL)
		}
		link = page.NextLink
	}
	if len(names) < 2 {
		t.Fatalf("followed the VM list to %d VMs, want the whole sample inventory", len(names))
	}

	list := "/subscriptions/" + sub + "/providers/Microsoft.Security/jitNetworkAccessPolicies?api-version=2020-01-01"
	req, _ := http.NewRequest("GET", front.URL+list, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var az api.ListResponse[api.PolicyResource]
	err = json.NewDecoder(resp.Body).Decode(&az)
	resp.Body.Close()
	if err != nil || !strings.HasPrefix(az.NextLink, front.URL+"/subscriptions/") {
		t.Fatalf("Azure list behind the front: nextLink %q (%v)", az.NextLink, err)
	}

	// The same front before a server that does not trust it: the links
	// are the backend's own, whatever the headers say.
	untrusting := listServer(t, nil)
	untrustedFront := tlsFront(t, untrusting.URL)
	page := getVMPage(t, untrustedFront.Client(), untrustedFront.URL+"/drawbridge/v1/vms?$top=1")
	if !strings.HasPrefix(page.NextLink, untrusting.URL+"/drawbridge/v1/vms?") {
		t.Fatalf("untrusted proxy: nextLink %q, want the backend's %s", page.NextLink, untrusting.URL)
	}
}
