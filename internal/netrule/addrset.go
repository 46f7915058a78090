package netrule

import (
	"net/netip"
	"slices"
	"strings"
)

// AddressSet is a set of IP addresses held as sorted, disjoint, non-adjacent
// inclusive ranges. It lets reachability be exact over "any public address":
// a deny rule removes part of the set, a later allow rule sees only what is
// left. IPv4 ranges sort before IPv6 ranges (netip.Addr.Compare), and no
// range spans both families. The zero value is the empty set.
type AddressSet struct {
	r []addrRange
}

type addrRange struct{ lo, hi netip.Addr }

// PrefixSet returns the set of every address in p.
func PrefixSet(p netip.Prefix) AddressSet {
	if !p.IsValid() {
		return AddressSet{}
	}
	p = netip.PrefixFrom(p.Addr().Unmap(), min(p.Bits(), p.Addr().Unmap().BitLen())).Masked()
	return AddressSet{r: []addrRange{{p.Addr(), lastAddr(p)}}}
}

// AddrSet returns the set holding only a.
func AddrSet(a netip.Addr) AddressSet {
	if !a.IsValid() {
		return AddressSet{}
	}
	a = a.Unmap()
	return AddressSet{r: []addrRange{{a, a}}}
}

// PrefixesSet returns the union of the prefixes.
func PrefixesSet(ps ...netip.Prefix) AddressSet {
	var s AddressSet
	for _, p := range ps {
		s = s.Union(PrefixSet(p))
	}
	return s
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	if a.Is4() {
		b := a.As4()
		for i := p.Bits(); i < 32; i++ {
			b[i/8] |= 1 << (7 - i%8)
		}
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	return netip.AddrFrom16(b)
}

// IsEmpty reports whether the set holds no address.
func (s AddressSet) IsEmpty() bool { return len(s.r) == 0 }

// First returns the lowest address of the set (the zero Addr if empty). It
// serves as a concrete example source in verdicts.
func (s AddressSet) First() netip.Addr {
	if len(s.r) == 0 {
		return netip.Addr{}
	}
	return s.r[0].lo
}

// Contains reports whether a is in the set.
func (s AddressSet) Contains(a netip.Addr) bool {
	a = a.Unmap()
	i, _ := slices.BinarySearchFunc(s.r, a, func(r addrRange, a netip.Addr) int {
		if r.hi.Less(a) {
			return -1
		}
		if a.Less(r.lo) {
			return 1
		}
		return 0
	})
	return i < len(s.r) && !a.Less(s.r[i].lo) && !s.r[i].hi.Less(a)
}

// sameAs reports whether s and t share their storage (one was derived from
// the other without change): a cheap test for the common case.
func (s AddressSet) sameAs(t AddressSet) bool {
	return len(s.r) == len(t.r) && (len(s.r) == 0 || &s.r[0] == &t.r[0])
}

// Equal reports whether both sets hold the same addresses.
func (s AddressSet) Equal(t AddressSet) bool { return slices.Equal(s.r, t.r) }

// Intersect returns the addresses in both s and t.
func (s AddressSet) Intersect(t AddressSet) AddressSet {
	var out []addrRange
	i, j := 0, 0
	for i < len(s.r) && j < len(t.r) {
		a, b := s.r[i], t.r[j]
		lo, hi := a.lo, a.hi
		if lo.Less(b.lo) {
			lo = b.lo
		}
		if b.hi.Less(hi) {
			hi = b.hi
		}
		if !hi.Less(lo) {
			out = append(out, addrRange{lo, hi})
		}
		if a.hi.Less(b.hi) {
			i++
		} else {
			j++
		}
	}
	return AddressSet{r: out}
}

// intersectRange is Intersect with the one range [lo, hi], allocating only
// for a non-empty result.
func (s AddressSet) intersectRange(lo, hi netip.Addr) AddressSet {
	var out []addrRange
	for _, a := range s.r {
		if a.hi.Less(lo) {
			continue
		}
		if hi.Less(a.lo) {
			break
		}
		l, h := a.lo, a.hi
		if l.Less(lo) {
			l = lo
		}
		if hi.Less(h) {
			h = hi
		}
		out = append(out, addrRange{l, h})
	}
	return AddressSet{r: out}
}

// firstInRange returns the lowest address of s within [lo, hi]: the
// First of intersectRange, without building the intersection.
func (s AddressSet) firstInRange(lo, hi netip.Addr) (netip.Addr, bool) {
	for _, a := range s.r {
		if a.hi.Less(lo) {
			continue
		}
		if hi.Less(a.lo) {
			break
		}
		if a.lo.Less(lo) {
			return lo, true
		}
		return a.lo, true
	}
	return netip.Addr{}, false
}

// Subtract returns the addresses in s that are not in t.
func (s AddressSet) Subtract(t AddressSet) AddressSet {
	if len(t.r) == 0 || len(s.r) == 0 {
		return s
	}
	out := make([]addrRange, 0, len(s.r))
	j := 0
	for _, a := range s.r {
		for j < len(t.r) && t.r[j].hi.Less(a.lo) {
			j++
		}
		lo, covered := a.lo, false
		for k := j; k < len(t.r) && !a.hi.Less(t.r[k].lo); k++ {
			b := t.r[k]
			if lo.Less(b.lo) {
				out = append(out, addrRange{lo, b.lo.Prev()})
			}
			if !b.hi.Less(a.hi) {
				covered = true
				break
			}
			lo = b.hi.Next()
		}
		if !covered {
			out = append(out, addrRange{lo, a.hi})
		}
	}
	return AddressSet{r: out}
}

// Union returns the addresses in s or t.
func (s AddressSet) Union(t AddressSet) AddressSet {
	if len(t.r) == 0 {
		return s
	}
	if len(s.r) == 0 {
		return t
	}
	all := make([]addrRange, 0, len(s.r)+len(t.r))
	all = append(append(all, s.r...), t.r...)
	slices.SortFunc(all, func(a, b addrRange) int { return a.lo.Compare(b.lo) })
	out := all[:1]
	for _, r := range all[1:] {
		last := &out[len(out)-1]
		// Merge overlapping or adjacent ranges of the same family. Next of the
		// family's last address is the zero Addr, which never equals r.lo.
		if last.lo.BitLen() == r.lo.BitLen() && (!last.hi.Less(r.lo) || last.hi.Next() == r.lo) {
			if last.hi.Less(r.hi) {
				last.hi = r.hi
			}
			continue
		}
		out = append(out, r)
	}
	return AddressSet{r: out}
}

// String lists the ranges, for test failures and debugging.
func (s AddressSet) String() string {
	parts := make([]string, len(s.r))
	for i, r := range s.r {
		if r.lo == r.hi {
			parts[i] = r.lo.String()
		} else {
			parts[i] = r.lo.String() + "-" + r.hi.String()
		}
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// AzureLoadBalancerAddress is the host virtual IP that Azure's load balancer
// health probes come from; the AzureLoadBalancer service tag stands for it.
func AzureLoadBalancerAddress() netip.Addr { return netip.AddrFrom4([4]byte{168, 63, 129, 16}) }

// notInternetV4 are the IPv4 ranges that no connection from the public
// internet can come from: this-network, RFC 1918 private, shared address
// space (CGNAT), loopback, link-local, multicast and reserved, plus Azure's
// host address 168.63.129.16, which only the platform (AzureLoadBalancer)
// uses. The benchmarking range 198.18.0.0/15 is deliberately NOT excluded:
// drawbridge's demos and tests use it as stand-in public address space.
func notInternetV4() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("100.64.0.0/10"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("169.254.0.0/16"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
		netip.MustParsePrefix("224.0.0.0/3"),
		netip.MustParsePrefix("168.63.129.16/32"),
	}
}

// InternetSet returns the addresses Azure's Internet service tag stands for
// and that a connection "from the internet" can come from: IPv4 outside the
// special ranges above and IPv6 global unicast (2000::/3), minus the virtual
// network's own address space.
func InternetSet(virtualNetwork AddressSet) AddressSet {
	all := PrefixesSet(netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("2000::/3"))
	return all.Subtract(PrefixesSet(notInternetV4()...)).Subtract(virtualNetwork)
}
