package api

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestClientAddr: the source is the peer's address; X-Forwarded-For is
// believed only when the peer is a configured trusted proxy.
func TestClientAddr(t *testing.T) {
	s := New(Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	cases := []struct {
		peer, xff, want string
	}{
		{"198.18.0.7:5555", "", "198.18.0.7"},
		{"198.18.0.7:5555", "203.0.113.9", "198.18.0.7"},         // untrusted peer: header ignored
		{"10.1.2.3:443", "203.0.113.9, 10.1.2.3", "203.0.113.9"}, // trusted proxy: first hop
		{"10.1.2.3:443", "garbage", "10.1.2.3"},                  // unparsable header: the proxy itself
		{"[::ffff:198.18.0.8]:80", "", "198.18.0.8"},             // v4-mapped peer is unmapped
		{"[2001:2::1]:80", "203.0.113.9", "2001:2::1"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/drawbridge/v1/vms", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := s.clientAddr(r).String(); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
}
