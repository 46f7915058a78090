package api

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr is the address a request came from: the peer, unless the peer
// is a trusted proxy, in which case X-Forwarded-For is read from the right
// (the hop the peer itself appended) leftwards, skipping trusted proxies,
// and the first address not in a trusted prefix is the client. The
// left-most entries are whatever the client sent and are never believed on
// their own: a client can write any address there. An entry that is not an
// address stops the walk at the last trusted hop.
func (s *Server) clientAddr(r *http.Request) netip.Addr {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok {
		return netip.Addr{}
	}
	if !s.trusted(peer) {
		return peer
	}
	hops := forwardedFor(r.Header)
	addr := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseHop(hops[i])
		if !ok {
			return addr
		}
		addr = a
		if !s.trusted(a) {
			return a
		}
	}
	return addr // every hop is a trusted proxy: the left-most is the origin
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor lists the X-Forwarded-For hops, left to right, over every
// header line (a proxy may add a line instead of extending the last one).
func forwardedFor(h http.Header) []string {
	var out []string
	for _, line := range h.Values("X-Forwarded-For") {
		for _, hop := range strings.Split(line, ",") {
			out = append(out, strings.TrimSpace(hop))
		}
	}
	return out
}

// parseHop parses "addr", "addr:port" or "[v6]:port" (proxies write all
// three), without zone, IPv4-mapped addresses unmapped.
func parseHop(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}
