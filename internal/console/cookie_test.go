package console_test

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/server"
)

// TestSessionCookieSecureBehindTrustedTLSProxy: the session cookie is
// Secure when a trusted proxy says the browser came over HTTPS, and not
// when an untrusted peer says so.
func TestSessionCookieSecureBehindTrustedTLSProxy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		secure  bool
	}{
		{"trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, true},
		{"untrusted peer", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, func(c *server.Config) { c.TrustedProxies = tc.trusted })
			b := e.browser()
			csrf := b.csrf("/console/signin")
			req, _ := http.NewRequest("POST", e.srv.URL+"/console/signin", strings.NewReader(url.Values{"csrf": {csrf}, "token": {e.admin}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Forwarded-Proto", "https")
			for _, c := range b.c.Jar.Cookies(req.URL) {
				req.AddCookie(c)
			}
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			var session string
			for _, c := range resp.Header.Values("Set-Cookie") {
				if strings.HasPrefix(c, "drawbridge_session=") {
					session = c
				}
			}
			if session == "" {
				t.Fatalf("no session cookie (status %d)", resp.StatusCode)
			}
			if got := strings.Contains(session, "; Secure"); got != tc.secure {
				t.Fatalf("session cookie %q: Secure %v, want %v", session, got, tc.secure)
			}
		})
	}
}
