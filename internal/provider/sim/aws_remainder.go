package sim

import (
	"slices"
	"strconv"
	"strings"

	"github.com/drawbridge/drawbridge/internal/netrule"
)

// remainder is what of p stays allowed once the covered ports are closed.
// A "-1" (all traffic) permission keeps every IP protocol: TCP and UDP on
// every other port, ICMP (icmp for IPv4 sources, icmpv6 for IPv6 ones) and
// one permission per other IP protocol number (ESP, GRE, ...), because EC2
// cannot express "everything but one port" in one permission. Restoring
// puts the original "-1" permission back.
func remainder(p netrule.IPPermission, cov []held) []netrule.IPPermission {
	mk := func(proto string, from, to int, v4 bool, v6 bool) netrule.IPPermission {
		n := netrule.IPPermission{IPProtocol: proto, FromPort: from, ToPort: to}
		if v4 {
			for _, r := range p.IPRanges {
				n.IPRanges = append(n.IPRanges, netrule.IPRange{CidrIP: r.CidrIP, Description: remainderMark})
			}
		}
		if v6 {
			for _, r := range p.IPv6Ranges {
				n.IPv6Ranges = append(n.IPv6Ranges, netrule.IPv6Range{CidrIPv6: r.CidrIPv6, Description: remainderMark})
			}
		}
		// Group and prefix-list sources keep the other ports too.
		for _, g := range p.UserIDGroupPairs {
			g.Description = remainderMark
			n.UserIDGroupPairs = append(n.UserIDGroupPairs, g)
		}
		for _, pl := range p.PrefixListIDs {
			n.PrefixListIDs = append(n.PrefixListIDs, netrule.PrefixListID{PrefixListID: pl.PrefixListID, Description: remainderMark})
		}
		return n
	}
	split := func(proto string, whole netrule.PortRange) []netrule.IPPermission {
		var out []netrule.IPPermission
		for _, r := range subtract(whole, portsOf(cov, proto)) {
			out = append(out, mk(proto, r.From, r.To, true, true))
		}
		return out
	}
	if p.Protocol() == netrule.Any {
		out := append(split("tcp", netrule.AllPorts), split("udp", netrule.AllPorts)...)
		for n := 0; n <= 255; n++ {
			switch {
			case n == 6 || n == 17:
			case n == 1:
				if len(p.IPRanges) > 0 || len(p.IPv6Ranges) == 0 {
					out = append(out, mk("icmp", -1, -1, true, false))
				}
			case n == 58:
				if len(p.IPv6Ranges) > 0 || len(p.IPRanges) == 0 {
					out = append(out, mk("icmpv6", -1, -1, false, true))
				}
			default:
				out = append(out, mk(strconv.Itoa(n), -1, -1, true, true))
			}
		}
		return out
	}
	var out []netrule.IPPermission
	for _, r := range subtract(p.Ports(), portsOf(cov, strings.ToLower(string(p.Protocol())))) {
		out = append(out, mk(p.IPProtocol, r.From, r.To, true, true))
	}
	return out
}

// dropRevokedSources removes from perms every source that duplicates one
// of a revoked permission (same protocol, ports and CIDR), and permissions
// left with no source.
func dropRevokedSources(perms []netrule.IPPermission, revoked []RevokedPermission) []netrule.IPPermission {
	key := func(p netrule.IPPermission, cidr string) string {
		return strings.ToLower(string(p.Protocol())) + "|" + p.Ports().String() + "|" + cidr
	}
	gone := map[string]bool{}
	for _, rv := range revoked {
		for _, r := range rv.Permission.IPRanges {
			gone[key(rv.Permission, r.CidrIP)] = true
		}
		for _, r := range rv.Permission.IPv6Ranges {
			gone[key(rv.Permission, r.CidrIPv6)] = true
		}
	}
	out := perms[:0:0]
	for _, p := range perms {
		n := len(p.IPRanges) + len(p.IPv6Ranges)
		q := p
		q.IPRanges = slices.DeleteFunc(slices.Clone(p.IPRanges), func(r netrule.IPRange) bool { return gone[key(p, r.CidrIP)] })
		q.IPv6Ranges = slices.DeleteFunc(slices.Clone(p.IPv6Ranges), func(r netrule.IPv6Range) bool { return gone[key(p, r.CidrIPv6)] })
		switch m := len(q.IPRanges) + len(q.IPv6Ranges); {
		case m == n:
			out = append(out, p)
		case m > 0:
			if len(q.IPRanges) == 0 {
				q.IPRanges = nil
			}
			if len(q.IPv6Ranges) == 0 {
				q.IPv6Ranges = nil
			}
			out = append(out, q)
		}
	}
	return out
}
