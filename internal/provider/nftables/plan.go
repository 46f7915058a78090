package nftables

import (
	"cmp"
	"container/heap"
	"net/netip"
	"slices"
	"time"

	"github.com/drawbridge/drawbridge/internal/netrule"
	"golang.org/x/sys/unix"
)

// This file is the pure part shared by the kernel implementation and the
// fake: from a State to the exact elements the kernel should hold, and back.

// setID names one allow set: an address family, a transport protocol, and
// whether it holds single addresses (a hash set: O(1) insert and lookup at
// any size) or address ranges (an interval set).
type setID struct {
	v6     bool
	proto  uint8 // unix.IPPROTO_TCP or unix.IPPROTO_UDP
	single bool
}

var allowSets = []setID{
	{false, unix.IPPROTO_TCP, true}, {false, unix.IPPROTO_TCP, false},
	{false, unix.IPPROTO_UDP, true}, {false, unix.IPPROTO_UDP, false},
	{true, unix.IPPROTO_TCP, true}, {true, unix.IPPROTO_TCP, false},
	{true, unix.IPPROTO_UDP, true}, {true, unix.IPPROTO_UDP, false},
}

func (s setID) name() string {
	n := "allow4_"
	if s.v6 {
		n = "allow6_"
	}
	n += protoName(s.proto)
	if s.single {
		return n + "_addr"
	}
	return n + "_net"
}

func protoName(p uint8) string {
	if p == unix.IPPROTO_UDP {
		return "udp"
	}
	return "tcp"
}

func protoOf(p uint8) netrule.Protocol {
	if p == unix.IPPROTO_UDP {
		return netrule.Udp
	}
	return netrule.Tcp
}

func protos(p netrule.Protocol) []uint8 {
	switch p {
	case netrule.Tcp:
		return []uint8{unix.IPPROTO_TCP}
	case netrule.Udp:
		return []uint8{unix.IPPROTO_UDP}
	}
	return []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP}
}

// elem is one allow-set element: the addresses first..last (inclusive, one
// family) on port, until end.
type elem struct {
	port        uint16
	first, last netip.Addr
	end         time.Time
}

type elemKey struct {
	port        uint16
	first, last netip.Addr
}

func (e elem) key() elemKey { return elemKey{e.port, e.first, e.last} }

func compareElem(a, b elem) int {
	if c := cmp.Compare(a.port, b.port); c != 0 {
		return c
	}
	if c := a.first.Compare(b.first); c != 0 {
		return c
	}
	return a.last.Compare(b.last)
}

// plan is the complete content a State asks of the kernel at one instant.
type plan struct {
	guard map[uint8][]uint16 // protocol -> sorted distinct ports
	allow map[setID][]elem   // sorted by (port, first), disjoint per port
}

// buildPlan turns a valid State into elements. Grants whose end is less than
// a millisecond (the kernel's timeout unit) after now are left out.
func buildPlan(st State, now time.Time) plan {
	p := plan{guard: map[uint8][]uint16{}, allow: map[setID][]elem{}}
	for _, g := range st.Guarded {
		for _, pr := range protos(g.Protocol) {
			p.guard[pr] = append(p.guard[pr], uint16(g.Port))
		}
	}
	for pr, ports := range p.guard {
		slices.Sort(ports)
		p.guard[pr] = slices.Compact(ports)
	}
	type group struct {
		set  setID
		port uint16
	}
	groups := map[group][]elem{}
	for _, g := range st.Grants {
		if g.End.Sub(now) < time.Millisecond {
			continue
		}
		src := g.Source.Masked()
		for _, pr := range protos(g.Protocol) {
			k := group{setID{src.Addr().Is6(), pr, src.IsSingleIP()}, uint16(g.Port)}
			groups[k] = append(groups[k], elem{uint16(g.Port), src.Addr(), lastAddr(src), g.End})
		}
	}
	for k, items := range groups {
		if k.set.single {
			p.allow[k.set] = append(p.allow[k.set], dedupe(items)...)
		} else {
			p.allow[k.set] = append(p.allow[k.set], disjoint(items)...)
		}
	}
	for s, es := range p.allow {
		slices.SortFunc(es, compareElem)
		p.allow[s] = es
	}
	return p
}

// disjoint returns the union of items (one port, one family) as disjoint
// ranges, each with the latest end among the items covering it, adjacent
// ranges of equal end merged, sorted by address.
func disjoint(items []elem) []elem {
	if len(items) == 0 {
		return nil
	}
	slices.SortFunc(items, func(a, b elem) int { return a.first.Compare(b.first) })
	// Fast path: already disjoint (the common case).
	ok := true
	for i := 1; i < len(items); i++ {
		if items[i].first.Compare(items[i-1].last) <= 0 {
			ok = false
			break
		}
	}
	if ok {
		return mergeAdjacent(items)
	}
	// Coverage changes only at a first address or one past a last address.
	points := make([]netip.Addr, 0, 2*len(items))
	for _, it := range items {
		points = append(points, it.first)
		if n := it.last.Next(); n.IsValid() {
			points = append(points, n)
		}
	}
	slices.SortFunc(points, netip.Addr.Compare)
	points = slices.Compact(points)
	var out []elem
	h := &endHeap{}
	j := 0
	for i, pt := range points {
		for j < len(items) && items[j].first == pt {
			heap.Push(h, items[j])
			j++
		}
		for h.Len() > 0 && (*h)[0].last.Less(pt) {
			heap.Pop(h)
		}
		if h.Len() == 0 {
			continue
		}
		last := maxAddr(pt.Is6())
		if i+1 < len(points) {
			last = points[i+1].Prev()
		}
		out = append(out, elem{items[0].port, pt, last, (*h)[0].end})
	}
	return mergeAdjacent(out)
}

// dedupe keeps one element per address (single-address sets), the latest
// end winning.
func dedupe(items []elem) []elem {
	slices.SortFunc(items, func(a, b elem) int { return a.first.Compare(b.first) })
	out := items[:0:0]
	for _, e := range items {
		if n := len(out); n > 0 && out[n-1].first == e.first {
			if e.end.After(out[n-1].end) {
				out[n-1].end = e.end
			}
			continue
		}
		out = append(out, e)
	}
	return out
}

func mergeAdjacent(es []elem) []elem {
	out := es[:0:0]
	for _, e := range es {
		if n := len(out); n > 0 && out[n-1].end.Equal(e.end) && out[n-1].last.Next() == e.first {
			out[n-1].last = e.last
			continue
		}
		out = append(out, e)
	}
	return out
}

type endHeap []elem

func (h endHeap) Len() int           { return len(h) }
func (h endHeap) Less(i, j int) bool { return h[i].end.After(h[j].end) }
func (h endHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *endHeap) Push(x any)        { *h = append(*h, x.(elem)) }
func (h *endHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	a := p.Addr()
	if a.Is4() {
		b := a.As4()
		setHostBits(b[:], p.Bits())
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	setHostBits(b[:], p.Bits())
	return netip.AddrFrom16(b)
}

func setHostBits(b []byte, bits int) {
	for i := range b {
		for k := 0; k < 8; k++ {
			if i*8+k >= bits {
				b[i] |= 0x80 >> k
			}
		}
	}
}

func maxAddr(v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16([16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	}
	return netip.AddrFrom4([4]byte{0xff, 0xff, 0xff, 0xff})
}

// rangePrefixes returns the fewest CIDR prefixes that together are exactly
// first..last.
func rangePrefixes(first, last netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for i := 0; i <= 256 && first.IsValid() && first.Compare(last) <= 0; i++ {
		bits := first.BitLen()
		for l := 0; l <= first.BitLen(); l++ {
			p := netip.PrefixFrom(first, l)
			if p.Masked().Addr() == first && lastAddr(p).Compare(last) <= 0 {
				bits = l
				break
			}
		}
		p := netip.PrefixFrom(first, bits)
		out = append(out, p)
		first = lastAddr(p).Next()
	}
	return out
}

// stateOf turns kernel content back into a State (see Firewall.Observe).
func stateOf(p plan) State {
	var st State
	for _, pr := range []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
		for _, port := range p.guard[pr] {
			st.Guarded = append(st.Guarded, GuardedPort{Port: int(port), Protocol: protoOf(pr)})
		}
	}
	for _, s := range allowSets {
		for _, e := range p.allow[s] {
			for _, pfx := range rangePrefixes(e.first, e.last) {
				st.Grants = append(st.Grants, Grant{Port: int(e.port), Protocol: protoOf(s.proto), Source: pfx, End: e.end})
			}
		}
	}
	return st
}

// Enforced returns the IDs of the desired grants that observed enforces:
// every address of the grant's source, on its port and every protocol it
// names, is allowed by observed grants whose end is no earlier than the
// grant's end minus tolerance. Grants that have already ended are never
// enforced. observed is typically Observe's result.
func Enforced(desired []Grant, observed State, now time.Time, tolerance time.Duration) []string {
	obs := buildPlan(State{Grants: observed.Grants}, now)
	var ids []string
	for _, g := range desired {
		if !g.End.After(now) || !g.Source.IsValid() {
			continue
		}
		src := g.Source.Masked()
		ok := true
		for _, pr := range protos(g.Protocol) {
			es := union(obs, src.Addr().Is6(), pr)
			if !covered(es, uint16(g.Port), src.Addr(), lastAddr(src), g.End.Add(-tolerance)) {
				ok = false
				break
			}
		}
		if ok {
			ids = append(ids, g.ID)
		}
	}
	return ids
}

// union is what the single-address and the interval set of one family and
// protocol allow together: disjoint ranges per port, latest end wins.
func union(p plan, v6 bool, proto uint8) []elem {
	byPort := map[uint16][]elem{}
	for _, single := range []bool{true, false} {
		for _, e := range p.allow[setID{v6, proto, single}] {
			byPort[e.port] = append(byPort[e.port], e)
		}
	}
	var out []elem
	for _, es := range byPort {
		out = append(out, disjoint(es)...)
	}
	slices.SortFunc(out, compareElem)
	return out
}

// covered reports whether sorted, disjoint es cover first..last on port with
// ends no earlier than minEnd.
func covered(es []elem, port uint16, first, last netip.Addr, minEnd time.Time) bool {
	i, _ := slices.BinarySearchFunc(es, elem{port: port, first: first}, func(a, b elem) int {
		if c := cmp.Compare(a.port, b.port); c != 0 {
			return c
		}
		return a.first.Compare(b.first)
	})
	// The element containing first starts at or before it.
	if i == len(es) || es[i].port != port || es[i].first != first {
		i--
	}
	for at := first; i >= 0 && i < len(es); i++ {
		e := es[i]
		if e.port != port || e.first.Compare(at) > 0 || e.last.Less(at) || e.end.Before(minEnd) {
			return false
		}
		if e.last.Compare(last) >= 0 {
			return true
		}
		at = e.last.Next()
	}
	return false
}
