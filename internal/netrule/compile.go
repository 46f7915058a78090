package netrule

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Compiling an NSG: its rules' fields parsed once (ports, addresses,
// service tags, protocol) so that evaluating many queries against it
// parses nothing.

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
