package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/clock"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
)

// listServer serves the sample inventory with a policy on web-01 and one on
// win-01, one policy a page.
func listServer(t *testing.T, trusted []netip.Prefix) *httptest.Server {
	t.Helper()
	st := memstore.New()
	n := 0
	svc := jit.NewService(jit.Config{Store: st, Providers: jit.ProviderMap{inventory.ProviderSim: sim.New(st)}, Clock: clock.Real{},
		NewID: func() string { n++; return fmt.Sprintf("g%04d", n) }})
	if err := svc.ApplyInventory(context.Background(), inventory.Sample()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Config{Service: svc, AzurePageSize: 1, TrustedProxies: trusted}).Handler())
	t.Cleanup(srv.Close)
	for i, vm := range []string{web01, win01} {
		id := fmt.Sprintf("/subscriptions/%s/resourceGroups/demo-rg/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/p%d", sub, i)
		body := strings.NewReader(`{"properties":{"virtualMachines":[{"id":"` + vm + `","ports":[{"number":22,"protocol":"TCP","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]}]}}`)
		req, _ := http.NewRequest("PUT", srv.URL+id, body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("PUT %s: %v %v", id, err, resp.Status)
		}
		resp.Body.Close()
	}
	return srv
}

func getList(t *testing.T, url string, header map[string]string) api.ListResponse[api.PolicyResource] {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, data)
	}
	var out api.ListResponse[api.PolicyResource]
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// A nextLink points where the client called, never where an untrusted
// peer's X-Forwarded-Host says.
func TestAzureListNextLink(t *testing.T) {
	forged := map[string]string{"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
	list := "/subscriptions/" + sub + "/providers/Microsoft.Security/jitNetworkAccessPolicies?api-version=2020-01-01"

	srv := listServer(t, nil)
	page := getList(t, srv.URL+list, forged)
	if len(page.Value) != 1 || !strings.HasPrefix(page.NextLink, srv.URL+"/subscriptions/"+sub+"/providers/Microsoft.Security/jitNetworkAccessPolicies?") ||
		!strings.Contains(page.NextLink, "api-version=2020-01-01") {
		t.Fatalf("first page: %d policies, nextLink %q", len(page.Value), page.NextLink)
	}
	last := getList(t, page.NextLink, nil)
	if len(last.Value) != 1 || last.NextLink != "" || last.Value[0].Name == page.Value[0].Name {
		t.Fatalf("second page: %+v", last)
	}

	trusting := listServer(t, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	page = getList(t, trusting.URL+list, forged)
	if !strings.HasPrefix(page.NextLink, "https://evil.example/subscriptions/") {
		t.Fatalf("behind a trusted proxy, nextLink %q ignores X-Forwarded-Proto/Host", page.NextLink)
	}
}
