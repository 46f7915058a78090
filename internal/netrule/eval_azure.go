package netrule

import (
	"fmt"
	"net/netip"
	"slices"
)

// Azure's evaluation: each NSG on the path in priority order, first match
// wins, split by source address so that a verdict says which sources get
// through and which rule decided.

func (e *addrEntry) within(env *Env, r AddressSet) AddressSet {
	switch e.kind {
	case matchAny:
		return r
	case matchInternet:
		if r.sameAs(env.internet) {
			return r // the usual query: "from the internet", whole
		}
		return r.Intersect(env.internet)
	case matchVNet:
		if r.sameAs(env.internet) {
			return AddressSet{} // InternetSet excludes the virtual network
		}
		return r.Intersect(env.vnet)
	case matchALB:
		if r.sameAs(env.internet) {
			return AddressSet{} // and the load balancer's address
		}
		return r.Intersect(env.alb)
	case matchService:
		return AddressSet{}
	}
	return r.intersectRange(e.lo, e.hi)
}

func (e *addrEntry) has(env *Env, a netip.Addr) bool {
	switch e.kind {
	case matchAny:
		return true
	case matchInternet:
		return env.internet.Contains(a)
	case matchVNet:
		return env.vnet.Contains(a)
	case matchALB:
		return env.alb.Contains(a)
	case matchService:
		return false
	}
	a = a.Unmap()
	return !a.Less(e.lo) && !e.hi.Less(a)
}

// piece is the part of the incoming source set that one rule entry decided.
type piece struct {
	set  AddressSet
	rule *compiledRule
	src  string
}

// decide runs the NSG's rules, then the default rules, in priority order
// over the sources in, and returns which rule decided which sources: first
// match wins, and a matched source is removed from further consideration
// (unless the rule is limited to some source ports, since other source
// ports go on to later rules).
func (c *CompiledNSG) decide(env *Env, dest netip.Addr, port int, proto Protocol, in AddressSet, out []piece) []piece {
	if c.filtered && !slices.Contains(c.only, port) {
		panic(fmt.Sprintf("netrule: NSG %s was compiled for ports %v only, evaluated for port %d", c.id, c.only, port))
	}
	remaining := in
	defaults := env.defaults
	if defaults == nil {
		defaults = compileDefaults() // a zero Env: slow but right
	}
	for _, rules := range [2][]compiledRule{c.rules, defaults} {
		for i := range rules {
			r := &rules[i]
			if !r.proto.Overlaps(proto) || !portsContain(r.ports, port) || !destMatch(env, r.dst, dest) {
				continue
			}
			var decided AddressSet
			for j := range r.src {
				m := r.src[j].within(env, remaining)
				if m.IsEmpty() {
					continue
				}
				out = append(out, piece{set: m, rule: r, src: r.src[j].raw})
				if len(r.src) == 1 {
					decided = m
				} else {
					decided = decided.Union(m)
				}
			}
			if r.anySrcPrt && !decided.IsEmpty() {
				if decided.Equal(remaining) {
					return out
				}
				remaining = remaining.Subtract(decided)
			}
		}
	}
	return out
}

func portsContain(rs []PortRange, port int) bool {
	for _, r := range rs {
		if r.Contains(port) {
			return true
		}
	}
	return false
}

func destMatch(env *Env, es []addrEntry, a netip.Addr) bool {
	for i := range es {
		if es[i].has(env, a) {
			return true
		}
	}
	return false
}

func (p piece) ref(group string) RuleRef { return p.rule.ref(group, p.src) }

// EvaluateAzure answers q for a VM's NIC behind the NSGs of path, in the
// order traffic meets them: the subnet's NSG, then the NIC's (nil entries,
// a level without an NSG, allow everything). A connection gets in only if
// every NSG allows it; within an NSG the lowest priority number that
// matches decides, and the default rules (AllowVnetInBound,
// AllowAzureLoadBalancerInBound, DenyAllInBound) come last.
func EvaluateAzure(path []*CompiledNSG, env Env, q Query) Verdict {
	var s Scratch
	return EvaluateAzureScratch(&s, path, env, q)
}

// Scratch is working memory for EvaluateAzureScratch. A caller that
// evaluates many queries (one goroutine at a time per Scratch) reuses one
// and so allocates nothing for the rules' decisions. The zero value is ready.
type Scratch struct {
	// AllowedOnly leaves a denied verdict without Example and Rules: a
	// caller that acts only on allowed verdicts saves the explanation's
	// work and allocations. Allowed verdicts are unchanged.
	AllowedOnly bool

	pieces  []piece
	decided []decision
}

// EvaluateAzureScratch is EvaluateAzure using s for its working memory.
func EvaluateAzureScratch(s *Scratch, path []*CompiledNSG, env Env, q Query) Verdict {
	if q.Protocol == Any || q.Protocol == "" {
		v := evalAzure(s, path, &env, q, Tcp)
		if v.Allowed {
			return v
		}
		if u := evalAzure(s, path, &env, q, Udp); u.Allowed {
			return u
		}
		return v
	}
	return evalAzure(s, path, &env, q, q.Protocol)
}

func evalAzure(s *Scratch, path []*CompiledNSG, env *Env, q Query, proto Protocol) Verdict {
	v := Verdict{Protocol: proto}
	cur := q.Source.Set
	pieces := s.pieces[:0]
	decided := s.decided[:0]
	defer func() {
		clear(pieces) // drop the sets, so the scratch keeps no garbage alive
		s.pieces, s.decided = pieces[:0], decided[:0]
	}()
	for _, n := range path {
		if n == nil {
			continue
		}
		if cur.IsEmpty() {
			break
		}
		start := len(pieces)
		pieces = n.decide(env, q.Destination, q.Port, proto, cur, pieces)
		decided = append(decided, decision{n.id, start, len(pieces)})
		var next AddressSet
		for _, p := range pieces[start:] {
			if p.rule.allow {
				next = next.Union(p.set)
			}
		}
		if next.IsEmpty() {
			if s.AllowedOnly {
				return v
			}
			// Everything that reached this NSG stops here: explain with the
			// first such source.
			v.Example = cur.First()
			v.Rules = explain(decided, pieces, v.Example, false)
			return v
		}
		cur = next
	}
	if cur.IsEmpty() {
		return v
	}
	v.Allowed = true
	v.Example = cur.First()
	v.Rules = explain(decided, pieces, v.Example, true)
	return v
}

// decision is what one NSG on the path decided: pieces[from:to].
type decision struct {
	group    string
	from, to int
}

// explain returns, per NSG, the first rule that decided source a the way
// it went: allowed through every NSG but the last, and through the last too
// if lastAllowed. (With source-port-limited rules a source can be both
// allowed and denied by one NSG, on different source ports.)
func explain(decided []decision, pieces []piece, a netip.Addr, lastAllowed bool) []RuleRef {
	out := make([]RuleRef, 0, len(decided))
	for i, d := range decided {
		allow := i < len(decided)-1 || lastAllowed
		for _, p := range pieces[d.from:d.to] {
			if p.rule.allow == allow && p.set.Contains(a) {
				out = append(out, p.ref(d.group))
				break
			}
		}
	}
	return out
}
