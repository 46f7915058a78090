package netrule

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Env is what the address-dependent service tags mean on a VM's inbound
// path: VirtualNetwork is the virtual network's address space (Azure also
// adds peered and on-premises ranges; the caller passes whatever it knows),
// and the internet is every public address outside it (see InternetSet).
type Env struct {
	vnet     AddressSet
	internet AddressSet
	alb      AddressSet
}

// NewEnv builds the tag meanings for a virtual network with the given
// address space. It does the set arithmetic once, so callers that evaluate
// many VMs of one network should build it once and reuse it.
func NewEnv(virtualNetwork ...netip.Prefix) Env {
	v := PrefixesSet(virtualNetwork...)
	return Env{vnet: v, internet: InternetSet(v), alb: AddrSet(AzureLoadBalancerAddress())}
}

// VirtualNetwork returns the set the VirtualNetwork tag stands for.
func (e Env) VirtualNetwork() AddressSet { return e.vnet }

// Internet returns the set the Internet tag stands for.
func (e Env) Internet() AddressSet { return e.internet }

// Source is where a new inbound connection may come from: a set of
// addresses. A query asks whether ANY address of the set gets through, which
// is what "reachable from the internet" means.
type Source struct {
	Set   AddressSet
	Label string // for messages: "Internet", or the address
}

// InternetSource is "any public address" in this environment.
func (e Env) InternetSource() Source { return Source{Set: e.internet, Label: TagInternet} }

// AddressSource is one specific source address.
func AddressSource(a netip.Addr) Source { return Source{Set: AddrSet(a), Label: a.Unmap().String()} }

// Query asks whether a new inbound connection is allowed to Destination
// (the VM's private address; Azure evaluates NSGs after translating public
// addresses) on Port over Protocol from Source. Protocol "*" asks about TCP
// and UDP and answers for the first that is allowed. Source ports are not
// part of the query: a connection may use any source port, so a rule limited
// to some source ports allows some connections but denies only some.
type Query struct {
	Destination netip.Addr
	Port        int
	Protocol    Protocol
	Source      Source
}

// RuleRef names the rule that decided a verdict, in words an operator can
// find in the portal or the API.
type RuleRef struct {
	// Group is the NSG's or the security group's ID.
	Group string `json:"group"`
	// Rule is the NSG rule name, or "IpPermissions[i]" for a security group.
	Rule     string `json:"rule"`
	Priority int    `json:"priority,omitempty"`
	Access   Access `json:"access"`
	// Default marks one of Azure's default rules (65000+).
	Default bool `json:"default,omitempty"`
	// Source is the source prefix or tag of the rule that matched, as written.
	Source   string `json:"source,omitempty"`
	Protocol string `json:"protocol,omitempty"`
	Ports    string `json:"ports,omitempty"`
}

func (r RuleRef) String() string {
	if r.Priority != 0 {
		return fmt.Sprintf("%s rule %s (priority %d, %s from %s)", r.Group, r.Rule, r.Priority, r.Access, r.Source)
	}
	return fmt.Sprintf("%s %s (%s %s from %s)", r.Group, r.Rule, r.Protocol, r.Ports, r.Source)
}

// Verdict answers a Query.
type Verdict struct {
	Allowed bool `json:"allowed"`
	// Protocol is the protocol the answer is for (TCP or UDP when the query
	// asked for "*").
	Protocol Protocol `json:"protocol"`
	// Example is a source address for which the verdict holds.
	Example netip.Addr `json:"example,omitzero"`
	// Rules are the deciding rules for Example along the path. Allowed on
	// Azure: the allowing rule of each NSG, subnet first (a level without an
	// NSG allows and has no entry). Denied on Azure: the allowing rules up to
	// the NSG that denied, then its denying rule. On AWS: the permission that
	// allows, or nothing (no permission allows: the implicit deny).
	Rules []RuleRef `json:"rules,omitempty"`
}

// Deciding returns the last deciding rule (the one that exposes or blocks),
// or the zero RuleRef.
func (v Verdict) Deciding() RuleRef {
	if len(v.Rules) == 0 {
		return RuleRef{}
	}
	return v.Rules[len(v.Rules)-1]
}

type compiledRule struct {
	ref       RuleRef
	allow     bool
	proto     Protocol
	src, dst  []addrEntry
	ports     []PortRange
	anySrcPrt bool // source ports "*": the rule decides for every source port
}

// CompiledNSG is an NSG's inbound rules, custom and default, parsed and in
// evaluation order. Compile once, evaluate many times.
type CompiledNSG struct {
	id    string
	rules []compiledRule
}

// ID returns the NSG's ID.
func (c *CompiledNSG) ID() string { return c.id }

// CompileNSG parses the inbound rules of n. Rules must be valid (see
// CheckSecurityRule); the first invalid one is reported by name.
func CompileNSG(n NSG) (*CompiledNSG, error) {
	c := &CompiledNSG{id: n.ID}
	add := func(r SecurityRule, def bool) error {
		dir, err := ParseDirection(string(r.Direction))
		if err != nil {
			return fmt.Errorf("network security group %s: securityRules %q: direction: %w", n.ID, r.Name, err)
		}
		if dir != Inbound {
			return nil
		}
		if errs := CheckSecurityRule(r); len(errs) > 0 && !def {
			return fmt.Errorf("network security group %s: securityRules %q: %w", n.ID, r.Name, errs[0])
		}
		acc, _ := ParseAccess(string(r.Access))
		proto, _ := ParseProtocol(string(r.Protocol))
		cr := compiledRule{
			ref: RuleRef{Group: n.ID, Rule: r.Name, Priority: r.Priority, Access: acc, Default: def,
				Protocol: string(proto), Ports: strings.Join(r.DestinationPorts(), ",")},
			allow: acc == Allow,
			proto: proto,
		}
		for _, s := range r.Sources() {
			e, _ := parseAddrEntry(s)
			cr.src = append(cr.src, e)
		}
		for _, s := range r.Destinations() {
			e, _ := parseAddrEntry(s)
			cr.dst = append(cr.dst, e)
		}
		cr.ports, _ = ParsePortRanges(r.DestinationPorts())
		sp := joinOne(r.SourcePortRange, r.SourcePortRanges)
		cr.anySrcPrt = len(sp) == 0
		for _, s := range sp {
			if pr, err := ParsePortRange(s); err == nil && pr == AllPorts {
				cr.anySrcPrt = true
			}
		}
		c.rules = append(c.rules, cr)
		return nil
	}
	for _, r := range n.SecurityRules {
		if err := add(r, false); err != nil {
			return nil, err
		}
	}
	// Priorities are unique per direction, so a stable sort is a total order.
	slices.SortStableFunc(c.rules, func(a, b compiledRule) int { return cmp.Compare(a.ref.Priority, b.ref.Priority) })
	for _, r := range DefaultRules() {
		_ = add(r, true)
	}
	return c, nil
}

func (e *addrEntry) within(env *Env, r AddressSet) AddressSet {
	switch e.kind {
	case matchAny:
		return r
	case matchInternet:
		return r.Intersect(env.internet)
	case matchVNet:
		return r.Intersect(env.vnet)
	case matchALB:
		return r.Intersect(env.alb)
	}
	return r.Intersect(e.set)
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
	}
	return e.set.Contains(a)
}

// piece is the part of the incoming source set that one rule entry decided.
type piece struct {
	set  AddressSet
	rule *compiledRule
	src  string
}

// decide runs the NSG's rules in priority order over the sources in, and
// returns which rule decided which sources: first match wins, and a matched
// source is removed from further consideration (unless the rule is limited
// to some source ports, since other source ports go on to later rules).
func (c *CompiledNSG) decide(env *Env, dest netip.Addr, port int, proto Protocol, in AddressSet) []piece {
	var out []piece
	remaining := in
	for i := range c.rules {
		r := &c.rules[i]
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
				break
			}
			remaining = remaining.Subtract(decided)
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

func (p piece) ref() RuleRef {
	r := p.rule.ref
	r.Source = p.src
	return r
}

// EvaluateAzure answers q for a VM's NIC behind the NSGs of path, in the
// order traffic meets them: the subnet's NSG, then the NIC's (nil entries,
// a level without an NSG, allow everything). A connection gets in only if
// every NSG allows it; within an NSG the lowest priority number that
// matches decides, and the default rules (AllowVnetInBound,
// AllowAzureLoadBalancerInBound, DenyAllInBound) come last.
func EvaluateAzure(path []*CompiledNSG, env Env, q Query) Verdict {
	if q.Protocol == Any || q.Protocol == "" {
		v := evalAzure(path, &env, q, Tcp)
		if v.Allowed {
			return v
		}
		if u := evalAzure(path, &env, q, Udp); u.Allowed {
			return u
		}
		return v
	}
	return evalAzure(path, &env, q, q.Protocol)
}

func evalAzure(path []*CompiledNSG, env *Env, q Query, proto Protocol) Verdict {
	v := Verdict{Protocol: proto}
	cur := q.Source.Set
	decided := make([][]piece, 0, len(path))
	for _, n := range path {
		if n == nil {
			continue
		}
		if cur.IsEmpty() {
			break
		}
		ps := n.decide(env, q.Destination, q.Port, proto, cur)
		decided = append(decided, ps)
		var next AddressSet
		for _, p := range ps {
			if p.rule.allow {
				next = next.Union(p.set)
			}
		}
		if next.IsEmpty() {
			// Everything that reached this NSG stops here: explain with the
			// first such source.
			v.Example = cur.First()
			v.Rules = explain(decided, v.Example, false)
			return v
		}
		cur = next
	}
	if cur.IsEmpty() {
		return v
	}
	v.Allowed = true
	v.Example = cur.First()
	v.Rules = explain(decided, v.Example, true)
	return v
}

// explain returns, per NSG, the first rule that decided source a the way
// it went: allowed through every NSG but the last, and through the last too
// if lastAllowed. (With source-port-limited rules a source can be both
// allowed and denied by one NSG, on different source ports.)
func explain(decided [][]piece, a netip.Addr, lastAllowed bool) []RuleRef {
	var out []RuleRef
	for i, ps := range decided {
		allow := i < len(decided)-1 || lastAllowed
		for _, p := range ps {
			if p.rule.allow == allow && p.set.Contains(a) {
				out = append(out, p.ref())
				break
			}
		}
	}
	return out
}

// CompiledSG is a security group's ingress permissions, parsed.
type CompiledSG struct {
	id    string
	perms []compiledPerm
}

type compiledPerm struct {
	ref     RuleRef
	all     bool // IpProtocol -1: every protocol and port
	proto   Protocol
	ports   PortRange
	entries []addrEntry
}

// ID returns the security group's ID.
func (c *CompiledSG) ID() string { return c.id }

// CompileSecurityGroup parses sg's permissions. Permissions must be valid
// (see CheckIPPermission); the first invalid one is reported by index.
func CompileSecurityGroup(sg SecurityGroup) (*CompiledSG, error) {
	c := &CompiledSG{id: sg.GroupID}
	for i, p := range sg.IPPermissions {
		if errs := CheckIPPermission(p); len(errs) > 0 {
			return nil, fmt.Errorf("security group %s: IpPermissions[%d]: %w", sg.GroupID, i, errs[0])
		}
		cp := compiledPerm{
			ref:   RuleRef{Group: sg.GroupID, Rule: "IpPermissions[" + strconv.Itoa(i) + "]", Access: Allow, Protocol: p.IPProtocol},
			proto: p.Protocol(),
			ports: p.Ports(),
		}
		cp.all = cp.proto == Any
		switch {
		case cp.all:
			cp.ref.Ports = "*"
		case cp.proto == Icmp:
			cp.ref.Ports = "icmp"
		default:
			cp.ref.Ports = cp.ports.String()
		}
		for _, r := range p.IPRanges {
			pr, _ := netip.ParsePrefix(strings.TrimSpace(r.CidrIP))
			cp.entries = append(cp.entries, addrEntry{raw: r.CidrIP, set: PrefixSet(pr)})
		}
		for _, r := range p.IPv6Ranges {
			pr, _ := netip.ParsePrefix(strings.TrimSpace(r.CidrIPv6))
			cp.entries = append(cp.entries, addrEntry{raw: r.CidrIPv6, set: PrefixSet(pr)})
		}
		c.perms = append(c.perms, cp)
	}
	return c, nil
}

// EvaluateAWS answers q for an ENI with the given security groups. Security
// groups only allow: a connection gets in if any permission of any group
// allows it (protocol -1 allows every protocol and port; ICMP permissions
// match ICMP queries whatever the port), and is denied otherwise. The
// destination is not consulted: a group applies to every address of the ENI.
func EvaluateAWS(groups []*CompiledSG, q Query) Verdict {
	if q.Protocol == Any || q.Protocol == "" {
		if v := evalAWS(groups, q, Tcp); v.Allowed {
			return v
		}
		if v := evalAWS(groups, q, Udp); v.Allowed {
			return v
		}
		return Verdict{Protocol: Tcp, Example: q.Source.Set.First()}
	}
	return evalAWS(groups, q, q.Protocol)
}

func evalAWS(groups []*CompiledSG, q Query, proto Protocol) Verdict {
	for _, g := range groups {
		if g == nil {
			continue
		}
		for i := range g.perms {
			p := &g.perms[i]
			switch {
			case p.all:
			case p.proto != proto:
				continue
			case proto != Icmp && !p.ports.Contains(q.Port):
				continue
			}
			for j := range p.entries {
				m := q.Source.Set.Intersect(p.entries[j].set)
				if m.IsEmpty() {
					continue
				}
				ref := p.ref
				ref.Source = p.entries[j].raw
				return Verdict{Allowed: true, Protocol: proto, Example: m.First(), Rules: []RuleRef{ref}}
			}
		}
	}
	return Verdict{Protocol: proto, Example: q.Source.Set.First()}
}
