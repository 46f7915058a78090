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
	defaults []compiledRule // Azure's default inbound rules, compiled once
}

// NewEnv builds the tag meanings for a virtual network with the given
// address space. It does the set arithmetic once, so callers that evaluate
// many VMs of one network should build it once and reuse it.
func NewEnv(virtualNetwork ...netip.Prefix) Env {
	v := PrefixesSet(virtualNetwork...)
	return Env{vnet: v, internet: InternetSet(v), alb: AddrSet(AzureLoadBalancerAddress()), defaults: compileDefaults()}
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
	name      string
	priority  int
	access    Access
	def       bool
	allow     bool
	proto     Protocol
	src, dst  []addrEntry
	ports     []PortRange
	portRaw   string   // as written, for RuleRef
	portsRaw  []string // as written, for RuleRef
	anySrcPrt bool     // source ports "*": the rule decides for every source port
}

func (r *compiledRule) ref(group, src string) RuleRef {
	ports := r.portRaw
	if len(r.portsRaw) > 0 {
		ports = strings.Join(joinOne(r.portRaw, r.portsRaw), ",")
	}
	return RuleRef{Group: group, Rule: r.name, Priority: r.priority, Access: r.access, Default: r.def,
		Source: src, Protocol: string(r.proto), Ports: ports}
}

// CompiledNSG is an NSG's inbound custom rules, parsed and in priority
// order. The default rules come from the Env at evaluation time. Compile
// once, evaluate many times.
type CompiledNSG struct {
	id    string
	rules []compiledRule
	// The arena the rules' addresses and ports live in, kept for reuse.
	entries []addrEntry
	ports   []PortRange
	// only, when filtered, lists the only destination ports the rules were
	// compiled for (CompileNSGPortsInto); keep is its per-rule workspace.
	filtered bool
	only     []int
	keep     []bool
}

// ID returns the NSG's ID.
func (c *CompiledNSG) ID() string { return c.id }

// CompileNSG parses the inbound rules of n; the first invalid one is
// reported by name and field (CheckSecurityRule reports them all). The
// addresses and ports of all rules share two backing arrays, so compiling
// costs a handful of allocations per NSG, not per rule.
func CompileNSG(n NSG) (*CompiledNSG, error) {
	c := &CompiledNSG{}
	if err := CompileNSGInto(&n, c); err != nil {
		return nil, err
	}
	return c, nil
}

// CompileNSGInto is CompileNSG into c, reusing c's memory: a caller that
// evaluates many NSGs once each (one per NIC) compiles them all into one
// CompiledNSG and allocates nothing after the first few. c must not be in
// use (being evaluated) meanwhile; verdicts and RuleRefs obtained from it
// before stay valid. On error c is left empty.
func CompileNSGInto(n *NSG, c *CompiledNSG) error {
	c.filtered, c.only = false, c.only[:0]
	return compileNSGInto(n, c, nil)
}

// CompileNSGPortsInto is CompileNSGInto for queries on the given
// destination ports only: it compiles just the inbound rules whose
// destination port ranges include one of ports, which it finds by parsing
// the port fields alone (cheap) before anything else. The rules it skips
// could never match such a query, so verdicts for these ports are exactly
// those of a full compile; the skipped rules are not checked, so n should
// be valid (CheckSecurityRule; inventory.Validate does it on load). A rule
// whose direction or destination ports do not parse is compiled, and
// reported. Evaluating c for any other port panics.
func CompileNSGPortsInto(n *NSG, c *CompiledNSG, ports []int) error {
	c.filtered, c.only = true, append(c.only[:0], ports...)
	if cap(c.keep) < len(n.SecurityRules) {
		c.keep = make([]bool, len(n.SecurityRules))
	}
	keep := c.keep[:len(n.SecurityRules)]
	for i := range n.SecurityRules {
		keep[i] = mayMatchPorts(&n.SecurityRules[i], ports)
	}
	return compileNSGInto(n, c, keep)
}

// mayMatchPorts reports whether r may decide a query for one of ports:
// false only for a rule known to be outbound or whose destination ports
// all parse and miss every port.
func mayMatchPorts(r *SecurityRule, ports []int) bool {
	switch {
	case r.Direction == Inbound:
	case r.Direction == Outbound:
		return false
	case !strings.EqualFold(string(r.Direction), "inbound"):
		return !strings.EqualFold(string(r.Direction), "outbound")
	}
	hit := func(s string) bool {
		if s == "" {
			return false
		}
		pr, ok := quickPortRange(s)
		if !ok {
			var err error
			if pr, err = ParsePortRange(s); err != nil {
				return true // let the compile report it
			}
		}
		for _, p := range ports {
			if pr.Contains(p) {
				return true
			}
		}
		return false
	}
	if r.DestinationPortRange == "" && len(r.DestinationPortRanges) == 0 {
		return true // missing: let the compile report it
	}
	if hit(r.DestinationPortRange) {
		return true
	}
	for _, s := range r.DestinationPortRanges {
		if hit(s) {
			return true
		}
	}
	return false
}

// quickPortRange parses the plain spellings "*", "N" and "N-M" (no
// spaces, no signs, at most 5 digits each) the way ParsePortRange does,
// without its trimming and error values; ok is false for anything else,
// which the caller hands to ParsePortRange.
func quickPortRange(s string) (PortRange, bool) {
	if s == "*" {
		return AllPorts, true
	}
	// One pass: digits, at most one '-', digits.
	var n [2]int
	k, digits := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if digits == 5 {
				return PortRange{}, false
			}
			n[k] = n[k]*10 + int(c-'0')
			digits++
		case c == '-' && k == 0 && digits > 0:
			k, digits = 1, 0
		default:
			return PortRange{}, false
		}
	}
	if digits == 0 || n[0] > 65535 || n[1] > 65535 {
		return PortRange{}, false
	}
	if k == 0 {
		return PortRange{n[0], n[0]}, true
	}
	if n[0] > n[1] {
		return PortRange{}, false
	}
	return PortRange{n[0], n[1]}, true
}

// compileNSGInto compiles the rules of n into c; with keep, only rule i
// where keep[i].
func compileNSGInto(n *NSG, c *CompiledNSG, keep []bool) error {
	ne, np, nr := 0, 0, 0
	for i := range n.SecurityRules {
		if keep != nil && !keep[i] {
			continue
		}
		r := &n.SecurityRules[i]
		ne += count(r.SourceAddressPrefix, r.SourceAddressPrefixes) + count(r.DestinationAddressPrefix, r.DestinationAddressPrefixes) + 2 // +2: a group's stand-in
		np += count(r.DestinationPortRange, r.DestinationPortRanges)
		nr++
	}
	// The rules keep windows into the arena, so it must not grow while
	// compiling: reuse the old arrays only when they are large enough.
	a := arena{entries: c.entries[:0], ports: c.ports[:0]}
	if cap(a.entries) < ne {
		a.entries = make([]addrEntry, 0, ne)
	}
	if cap(a.ports) < np {
		a.ports = make([]PortRange, 0, np)
	}
	c.id = n.ID
	if cap(c.rules) < nr {
		c.rules = make([]compiledRule, 0, nr)
	}
	c.rules = c.rules[:0]
	defer func() { c.entries, c.ports = a.entries, a.ports }()
	for i := range n.SecurityRules {
		if keep != nil && !keep[i] {
			continue
		}
		r := &n.SecurityRules[i]
		cr, inbound, err := compileRule(r, false, &a)
		if err != nil {
			c.rules = c.rules[:0]
			return fmt.Errorf("network security group %s: securityRules %q: %w", n.ID, r.Name, err)
		}
		if inbound {
			c.rules = append(c.rules, cr)
		}
	}
	// Priorities are unique per direction, so a stable sort is a total order.
	if !slices.IsSortedFunc(c.rules, func(a, b compiledRule) int { return cmp.Compare(a.priority, b.priority) }) {
		slices.SortStableFunc(c.rules, func(a, b compiledRule) int { return cmp.Compare(a.priority, b.priority) })
	}
	return nil
}

func count(one string, many []string) int {
	if one != "" {
		return 1 + len(many)
	}
	return len(many)
}

// arena is where compileRule puts parsed addresses and ports; each rule
// keeps a capacity-capped window of it.
type arena struct {
	entries []addrEntry
	ports   []PortRange
}

func compileRule(r *SecurityRule, def bool, a *arena) (compiledRule, bool, error) {
	var cr compiledRule
	dir, err := ParseDirection(string(r.Direction))
	if err != nil {
		return cr, false, FieldError{"direction", err.Error()}
	}
	if dir != Inbound {
		return cr, false, nil
	}
	if !def && (r.Priority < MinPriority || r.Priority > MaxPriority) {
		return cr, false, fieldErr("priority", "%d is outside the range %d-%d", r.Priority, MinPriority, MaxPriority)
	}
	if cr.access, err = ParseAccess(string(r.Access)); err != nil {
		return cr, false, FieldError{"access", err.Error()}
	}
	if cr.proto, err = parseProtocolFast(r.Protocol); err != nil {
		return cr, false, FieldError{"protocol", err.Error()}
	}
	cr.name, cr.priority, cr.def, cr.allow = r.Name, r.Priority, def, cr.access == Allow
	srcOne, dstOne := r.SourceAddressPrefix, r.DestinationAddressPrefix
	if srcOne == "" && len(r.SourceAddressPrefixes) == 0 && len(r.SourceApplicationSecurityGroups) > 0 {
		srcOne = TagVirtualNetwork // members of a group are NICs of the virtual network
	}
	if dstOne == "" && len(r.DestinationAddressPrefixes) == 0 && len(r.DestinationApplicationSecurityGroups) > 0 {
		if !cr.allow {
			return cr, false, nil // may not cover this VM: never counted on to block
		}
		dstOne = "*" // may cover this VM: counted as reaching it
	}
	if cr.src, err = compileEntries(a, "sourceAddressPrefix", srcOne, r.SourceAddressPrefixes); err != nil {
		return cr, false, err
	}
	if cr.dst, err = compileEntries(a, "destinationAddressPrefix", dstOne, r.DestinationAddressPrefixes); err != nil {
		return cr, false, err
	}
	cr.portRaw, cr.portsRaw = r.DestinationPortRange, r.DestinationPortRanges
	if cr.portRaw == "" && len(cr.portsRaw) == 0 {
		return cr, false, fieldErr("destinationPortRange", "one of destinationPortRange or destinationPortRanges is required")
	}
	start := len(a.ports)
	for _, ps := range [2][]string{{cr.portRaw}, cr.portsRaw} {
		for _, p := range ps {
			if p == "" {
				continue
			}
			pr, err := ParsePortRange(p)
			if err != nil {
				return cr, false, FieldError{"destinationPortRange", err.Error()}
			}
			a.ports = append(a.ports, pr)
		}
	}
	cr.ports = a.ports[start:len(a.ports):len(a.ports)]
	cr.anySrcPrt = r.SourcePortRange == "" && len(r.SourcePortRanges) == 0
	for _, ps := range [2][]string{{r.SourcePortRange}, r.SourcePortRanges} {
		for _, sp := range ps {
			if sp == "" {
				continue
			}
			pr, err := ParsePortRange(sp)
			if err != nil {
				return cr, false, FieldError{"sourcePortRange", err.Error()}
			}
			if pr == AllPorts {
				cr.anySrcPrt = true
			}
		}
	}
	return cr, true, nil
}

func compileEntries(a *arena, field, one string, many []string) ([]addrEntry, error) {
	if one == "" && len(many) == 0 {
		return nil, fieldErr(field, "one of %s or %ses is required", field, field)
	}
	start := len(a.entries)
	add := func(s string) error {
		e, err := parseAddrEntry(s)
		if err != nil {
			return FieldError{field, err.Error()}
		}
		a.entries = append(a.entries, e)
		return nil
	}
	if one != "" {
		if err := add(one); err != nil {
			return nil, err
		}
	}
	for _, s := range many {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return a.entries[start:len(a.entries):len(a.entries)], nil
}

// parseProtocolFast accepts the canonical spellings without the allocation
// ParseProtocol's lower-casing costs, and falls back to it for the rest.
func parseProtocolFast(p Protocol) (Protocol, error) {
	switch p {
	case Tcp, Udp, Icmp, Any:
		return p, nil
	}
	return ParseProtocol(string(p))
}

// compileDefaults compiles Azure's default inbound rules.
func compileDefaults() []compiledRule {
	var out []compiledRule
	var a arena
	rules := DefaultRules()
	for i := range rules {
		if cr, inbound, err := compileRule(&rules[i], true, &a); err == nil && inbound {
			out = append(out, cr)
		}
	}
	return out
}

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
			cp.entries = append(cp.entries, prefixEntry(r.CidrIP, pr))
		}
		for _, r := range p.IPv6Ranges {
			pr, _ := netip.ParsePrefix(strings.TrimSpace(r.CidrIPv6))
			cp.entries = append(cp.entries, prefixEntry(r.CidrIPv6, pr))
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
				first, ok := q.Source.Set.firstInRange(p.entries[j].lo, p.entries[j].hi)
				if !ok {
					continue
				}
				ref := p.ref
				ref.Source = p.entries[j].raw
				return Verdict{Allowed: true, Protocol: proto, Example: first, Rules: []RuleRef{ref}}
			}
		}
	}
	return Verdict{Protocol: proto, Example: q.Source.Set.First()}
}
