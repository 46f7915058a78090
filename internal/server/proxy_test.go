package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/server"
)

// callFrom is call with an X-Forwarded-For header (the test's connections
// come from 127.0.0.1, the trusted proxy).
func callFrom(t *testing.T, srv *server.Server, xff, token, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// Behind a trusted proxy, the caller is the right-most X-Forwarded-For hop
// that is not a trusted proxy: a request without a source opens access for
// that address (not the proxy's, not a spoofed left-most one), and failed
// authentications are limited per caller, not per proxy.
func TestTrustedProxy(t *testing.T) {
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db"), SampleInventory: true,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	admin := srv.AdminToken
	pol, _ := json.Marshal(policyBody(webVM))
	if st, body := callFrom(t, srv, "", admin, "PUT", webPol, string(pol)); st != 200 {
		t.Fatalf("PUT policy = %d %s", st, body)
	}
	req := `{"vm":"` + webVM + `","ports":[22],"duration":"1h"}`
	st, body := callFrom(t, srv, "203.0.113.66, 198.18.0.44", admin, "POST", "/drawbridge/v1/requests", req)
	if st != 202 && st != 200 {
		t.Fatalf("request = %d %s", st, body)
	}
	if !strings.Contains(string(body), `"allowedSourceAddressPrefix": "198.18.0.44"`) {
		t.Fatalf("grant source is not the right-most untrusted hop 198.18.0.44: %s", body)
	}

	// Twelve bad tokens from one caller behind the proxy: that caller is
	// limited; another caller behind the same proxy is not; a valid token
	// from the limited caller's own address still works.
	bad := "dbt_" + strings.Repeat("B", 43)
	var last int
	for range 12 {
		last, _ = callFrom(t, srv, "198.18.0.50", bad, "GET", "/drawbridge/v1/vms", "")
	}
	if last != 429 {
		t.Fatalf("12th bad token from 198.18.0.50 = %d, want 429", last)
	}
	if st, _ := callFrom(t, srv, "198.18.0.51", bad, "GET", "/drawbridge/v1/vms", ""); st != 401 {
		t.Fatalf("bad token from another caller behind the proxy = %d, want 401", st)
	}
	if st, _ := callFrom(t, srv, "", bad, "GET", "/drawbridge/v1/vms", ""); st != 401 {
		t.Fatalf("bad token from the proxy itself = %d, want 401", st)
	}
	if st, _ := callFrom(t, srv, "198.18.0.50", admin, "GET", "/drawbridge/v1/vms", ""); st != 200 {
		t.Fatalf("valid token from the limited caller = %d, want 200", st)
	}
	// A spoofed left-most hop does not escape the limit.
	if st, _ := callFrom(t, srv, "1.2.3.4, 198.18.0.50", bad, "GET", "/drawbridge/v1/vms", ""); st != 429 {
		t.Fatalf("bad token with a spoofed left-most hop = %d, want 429", st)
	}
}
