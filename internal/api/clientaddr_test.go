package api

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestClientAddr: the source is the peer's address; X-Forwarded-For is
// believed only when the peer is a configured trusted proxy, and then read
// from the right: the first hop that is not a trusted proxy is the client.
// The left-most entry is the client's own claim and never wins over the
// hop a trusted proxy appended.
func TestClientAddr(t *testing.T) {
	s := New(Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:2:0:1::/64")}})
	cases := []struct {
		peer string
		xff  []string
		want string
	}{
		{"198.18.0.7:5555", nil, "198.18.0.7"},
		{"198.18.0.7:5555", []string{"203.0.113.9"}, "198.18.0.7"},                // untrusted peer: header ignored
		{"10.1.2.3:443", []string{"203.0.113.9, 10.1.2.3"}, "203.0.113.9"},        // trusted proxy chain
		{"10.1.2.3:443", []string{"garbage"}, "10.1.2.3"},                         // unparsable header: the proxy itself
		{"[::ffff:198.18.0.8]:80", nil, "198.18.0.8"},                             // v4-mapped peer is unmapped
		{"[2001:2::1]:80", []string{"203.0.113.9"}, "2001:2::1"},                  // untrusted v6 peer
		{"10.1.2.3:443", []string{"1.2.3.4, 198.18.0.9"}, "198.18.0.9"},           // spoofed left-most: the proxy's hop wins
		{"10.1.2.3:443", []string{"1.2.3.4", "198.18.0.9"}, "198.18.0.9"},         // two header lines
		{"10.1.2.3:443", []string{"1.2.3.4, 198.18.0.9, 10.9.9.9"}, "198.18.0.9"}, // two trusted proxies
		{"10.1.2.3:443", []string{"1.2.3.4, garbage, 10.9.9.9"}, "10.9.9.9"},      // garbage behind a trusted hop: stop there
		{"10.1.2.3:443", []string{"10.7.7.7, 10.9.9.9"}, "10.7.7.7"},              // all trusted: the origin
		{"10.1.2.3:443", []string{"198.18.0.9:4711"}, "198.18.0.9"},               // hop with a port
		{"10.1.2.3:443", []string{"[2001:2::9]:4711"}, "2001:2::9"},               // v6 hop with a port
		{"[2001:2:0:1::5]:443", []string{"2001:2::9"}, "2001:2::9"},               // trusted v6 proxy
		{"10.1.2.3:443", []string{"::ffff:198.18.0.9"}, "198.18.0.9"},             // mapped hop is unmapped
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/drawbridge/v1/vms", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := s.clientAddr(r).String(); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
}

// FuzzClientAddr: whatever X-Forwarded-For says, an untrusted peer is the
// client; behind a trusted peer the client is the peer or one of the hops,
// and a trusted address only when every hop to its right is trusted too.
func FuzzClientAddr(f *testing.F) {
	f.Add("10.1.2.3:443", "203.0.113.9, 10.1.2.3")
	f.Add("10.1.2.3:443", "1.2.3.4, 198.18.0.9, 10.9.9.9")
	f.Add("198.18.0.7:1", "10.0.0.1")
	f.Add("[2001:2:0:1::5]:443", "[2001:2::9]:4711, garbage")
	f.Add("10.1.2.3:443", ",,, ,::ffff:10.0.0.1")
	s := New(Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:2:0:1::/64")}})
	f.Fuzz(func(t *testing.T, peer, xff string) {
		r := httptest.NewRequest("GET", "/drawbridge/v1/vms", nil)
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-For", xff)
		got := s.clientAddr(r)
		p, ok := parseHop(peer)
		if !ok {
			if got.IsValid() {
				t.Fatalf("peer %q unparsable but client %v", peer, got)
			}
			return
		}
		if !s.trusted(p) {
			if got != p {
				t.Fatalf("untrusted peer %v, client %v", p, got)
			}
			return
		}
		hops := forwardedFor(r.Header)
		if len(hops) == 0 || !parses(hops[len(hops)-1]) {
			if got != p {
				t.Fatalf("no usable hop in %q, but client %v (peer %v)", xff, got, p)
			}
			return
		}
		for i := len(hops) - 1; i >= 0; i-- {
			a, ok := parseHop(hops[i])
			if !ok {
				t.Fatalf("client %v found past the unparsable hop %q", got, hops[i])
			}
			if a == got {
				if s.trusted(a) && i > 0 {
					if b, ok := parseHop(hops[i-1]); ok {
						t.Fatalf("stopped at trusted %v with a parsable hop %v to its left", a, b)
					}
				}
				return
			}
			if !s.trusted(a) {
				t.Fatalf("skipped the untrusted hop %v to reach %v", a, got)
			}
		}
		t.Fatalf("client %v is neither the peer nor a hop of %q", got, xff)
	})
}

func parses(hop string) bool {
	_, ok := parseHop(hop)
	return ok
}
