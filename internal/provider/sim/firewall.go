package sim

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// Azure Firewall (classic rules). A VM whose inventory names a firewall
// (vm.Firewall) is reached through it: a grant adds a DNAT rule to the
// firewall (its first public IP and a port → the VM's private IP and the
// granted port, from the grant's source only), and the NSG allow rule of
// the grant names the firewall's AzureFirewallSubnet as source, because
// the firewall SNATs what it DNATs to a private address. JIT's deny rules
// stay on the NSGs as for any VM.
//
// What JIT owns on a firewall: one NAT rule collection named
// FirewallCollection, holding rules named "drawbridge-jit-dnat-<VM
// hash>-<grant>". It exists only while a grant through the firewall is
// active; when the last one ends the collection is removed, which leaves
// the firewall's collections exactly as they were. No other collection or
// rule is ever changed. A firewall managed by Firewall Manager (a firewall
// policy) is refused: JIT supports only classic rules.

// FirewallCollection is the name of the NAT rule collection JIT owns.
const FirewallCollection = "drawbridge-jit"

// dnatPortBase is where a DNAT port search starts when the granted port is
// already taken on the firewall's public IP by another rule.
const dnatPortBase = 50000

func dnatPrefix(vmID string) string { return RulePrefix + "dnat-" + vmHash(vmID) + "-" }

// DNATRuleName is the name of the DNAT rule of a grant on a VM.
func DNATRuleName(vmID, grantID string) string {
	head := dnatPrefix(vmID)
	id := sanitize(grantID)
	if len(head)+len(id) > MaxRuleNameLen {
		h := shortHash(grantID, 10)
		id = id[:MaxRuleNameLen-len(head)-len(h)-1] + "-" + h
	}
	return head + id
}

// VMOwnsDNAT reports whether name is one of JIT's DNAT rules for vmID.
func VMOwnsDNAT(vmID, name string) bool {
	return strings.HasPrefix(strings.ToLower(name), dnatPrefix(vmID))
}

// vmFirewall loads the classic firewall in front of vm, or nil if none.
// Enabling (strict) fails on a missing firewall or one Firewall Manager
// controls; disabling skips them so that JIT's leftovers elsewhere are
// still cleaned up.
func (s *session) vmFirewall(vm inventory.VM, strict bool) (*inventory.Firewall, error) {
	if vm.Firewall == "" {
		return nil, nil
	}
	fw, err := get[inventory.Firewall](s, inventory.KindFirewall, vm.Firewall)
	if err != nil {
		return nil, err
	}
	switch {
	case fw == nil && strict:
		return nil, fmt.Errorf("virtual machine %s: firewall %s not found: %w", vm.ID, vm.Firewall, ErrInventory)
	case fw == nil:
		return nil, nil
	case fw.ManagedByFirewallManager && strict:
		return nil, fmt.Errorf("virtual machine %s is behind Azure Firewall %s, which Azure Firewall Manager controls through a firewall policy; JIT supports only firewalls with classic rules: %w", vm.ID, fw.ID, ErrUnprotectable)
	case fw.ManagedByFirewallManager:
		return nil, nil
	}
	return fw, nil
}

// firewallSource is the NSG source of a grant's allow rule behind fw.
func firewallSource(fw *inventory.Firewall, grants []jit.DesiredGrant) (netip.Prefix, error) {
	if fw == nil || len(grants) == 0 {
		return netip.Prefix{}, nil
	}
	if !fw.SubnetPrefix.IsValid() {
		return netip.Prefix{}, fmt.Errorf("firewall %s: subnetPrefix (the AzureFirewallSubnet prefix DNAT traffic arrives from) is not set: %w", fw.ID, ErrInventory)
	}
	return fw.SubnetPrefix, nil
}

// reconcileFirewalls makes vm's DNAT rules on its firewall match grants and
// removes its rules from firewalls it is no longer behind.
func (s *session) reconcileFirewalls(vm inventory.VM, fw *inventory.Firewall, target netip.Addr, grants []jit.DesiredGrant) error {
	keys, err := s.candidates(inventory.KindFirewall, func(f *Footprint) []string { return f.Firewalls })
	if err != nil {
		return err
	}
	for _, k := range keys {
		if fw != nil && inventory.Key(fw.ID) == k {
			continue
		}
		other, err := get[inventory.Firewall](s, inventory.KindFirewall, k)
		if err != nil {
			return err
		}
		if other == nil {
			continue
		}
		if changed, err := setDNAT(other, vm.ID, nil); err != nil {
			return err
		} else if changed {
			s.put(inventory.KindFirewall, k, other)
		}
	}
	if fw == nil {
		return nil
	}
	var want []inventory.NatRule
	if len(grants) > 0 {
		if len(fw.PublicIPs) == 0 {
			return fmt.Errorf("firewall %s has no public IP address for a DNAT rule: %w", fw.ID, ErrInventory)
		}
		if !target.IsValid() {
			return fmt.Errorf("virtual machine %s has no private IP address for a DNAT rule to translate to: %w", vm.ID, ErrInventory)
		}
	}
	for _, g := range grants {
		if err := dnatConflict(fw, target, g); err != nil {
			return err
		}
		want = append(want, dnatRule(vm, fw, target, g))
	}
	changed, err := setDNAT(fw, vm.ID, want)
	if err != nil {
		return err
	}
	if changed {
		s.put(inventory.KindFirewall, fw.ID, fw)
	}
	s.connectTo = ConnectTo(fw, vm.ID, grants)
	if len(want) > 0 {
		s.newFP.Firewalls = append(s.newFP.Firewalls, inventory.Key(fw.ID))
	}
	return nil
}

func dnatProtocols(p netrule.Protocol) []string {
	switch p {
	case netrule.Tcp:
		return []string{"TCP"}
	case netrule.Udp:
		return []string{"UDP"}
	}
	return []string{"TCP", "UDP"}
}

func dnatRule(vm inventory.VM, fw *inventory.Firewall, target netip.Addr, g jit.DesiredGrant) inventory.NatRule {
	proto := g.Protocol
	if proto == "" {
		proto = netrule.Any
	}
	return inventory.NatRule{
		Name:                 DNATRuleName(vm.ID, g.GrantID),
		Description:          fmt.Sprintf("drawbridge JIT: grant %s forwards %s to port %d/%s of %s until %s", g.GrantID, g.Source, g.Port, proto, vmName(vm), g.End.UTC().Format("2006-01-02T15:04:05Z")),
		SourceAddresses:      []string{g.Source.String()},
		DestinationAddresses: []string{fw.PublicIPs[0].String()},
		Protocols:            dnatProtocols(proto),
		TranslatedAddress:    target.String(),
		TranslatedPort:       strconv.Itoa(g.Port),
	}
}

// setDNAT makes vm's rules in JIT's collection equal want (their listening
// ports aside, which it keeps or chooses), creating the collection on the
// first rule and removing it with the last. It reports whether fw changed.
func setDNAT(fw *inventory.Firewall, vmID string, want []inventory.NatRule) (bool, error) {
	ci := slices.IndexFunc(fw.NatRuleCollections, func(c inventory.NatRuleCollection) bool { return strings.EqualFold(c.Name, FirewallCollection) })
	if ci < 0 && len(want) == 0 {
		return false, nil
	}
	var cur []inventory.NatRule
	if ci >= 0 {
		cur = fw.NatRuleCollections[ci].Rules
	}
	prefix := dnatPrefix(vmID)
	var rules []inventory.NatRule
	old := map[string]inventory.NatRule{}
	for _, r := range cur {
		if strings.HasPrefix(strings.ToLower(r.Name), prefix) {
			old[strings.ToLower(r.Name)] = r
			continue
		}
		rules = append(rules, r) // another VM's
	}
	for _, w := range want {
		if o, ok := old[strings.ToLower(w.Name)]; ok && len(o.DestinationPorts) == 1 && portFree(fw, rules, w, o.DestinationPorts[0]) {
			w.DestinationPorts = o.DestinationPorts
		} else {
			p, ok := choosePort(fw, rules, w)
			if !ok {
				return false, fmt.Errorf("firewall %s: no free port on %s for DNAT rule %s: %w", fw.ID, w.DestinationAddresses[0], w.Name, ErrNoRoom)
			}
			w.DestinationPorts = []string{p}
		}
		rules = append(rules, w)
	}
	slices.SortFunc(rules, func(a, b inventory.NatRule) int { return strings.Compare(a.Name, b.Name) })
	if ci >= 0 && natRulesEqual(cur, rules) {
		return false, nil
	}
	switch {
	case len(rules) == 0:
		fw.NatRuleCollections = slices.Delete(fw.NatRuleCollections, ci, ci+1)
		if len(fw.NatRuleCollections) == 0 {
			fw.NatRuleCollections = nil
		}
	case ci < 0:
		fw.NatRuleCollections = append(fw.NatRuleCollections, inventory.NatRuleCollection{
			Name: FirewallCollection, Priority: collectionPriority(fw), Action: "Dnat", Rules: rules})
	default:
		fw.NatRuleCollections[ci].Rules = rules
	}
	return true, nil
}

func natRulesEqual(a, b []inventory.NatRule) bool {
	return slices.EqualFunc(a, b, func(x, y inventory.NatRule) bool {
		return fmt.Sprintf("%#v", x) == fmt.Sprintf("%#v", y)
	})
}

// collectionPriority is the highest-numbered free NAT collection priority
// (65000 down): JIT's rules listen on ports no other rule uses, so their
// order does not matter, and last never goes ahead of a user's collection.
func collectionPriority(fw *inventory.Firewall) int {
	used := map[int]bool{}
	for _, c := range fw.NatRuleCollections {
		used[c.Priority] = true
	}
	p := 65000
	for used[p] && p > 100 {
		p--
	}
	return p
}

// portFree reports whether port is free on w's public IP for w's protocols
// among the user's rules of the firewall and JIT's rules placed so far.
func portFree(fw *inventory.Firewall, placed []inventory.NatRule, w inventory.NatRule, port string) bool {
	n, err := strconv.Atoi(port)
	if err != nil {
		return false
	}
	return portFreeIn(fw, placed, w.Name, w, n)
}

func portFreeIn(fw *inventory.Firewall, extra []inventory.NatRule, self string, w inventory.NatRule, port int) bool {
	addr, err := netip.ParseAddr(w.DestinationAddresses[0])
	if err != nil {
		return false
	}
	taken := func(r inventory.NatRule) bool {
		if strings.EqualFold(r.Name, self) {
			return false
		}
		for _, p := range w.Protocols {
			if r.ListensOn(addr, port, p) {
				return true
			}
		}
		return false
	}
	for _, c := range fw.NatRuleCollections {
		for _, r := range c.Rules {
			if !strings.EqualFold(c.Name, FirewallCollection) && taken(r) {
				return false
			}
		}
	}
	for _, r := range extra {
		if taken(r) {
			return false
		}
	}
	return true
}

// choosePort picks the port a new DNAT rule listens on: the granted port
// when no other rule uses it on that public IP, else the first free one
// from dnatPortBase up. rules are JIT's rules already placed.
func choosePort(fw *inventory.Firewall, rules []inventory.NatRule, w inventory.NatRule) (string, bool) {
	if p := w.TranslatedPortNumber(); p > 0 && portFreeIn(fw, rules, w.Name, w, p) {
		return strconv.Itoa(p), true
	}
	for p := dnatPortBase; p <= 65535; p++ {
		if portFreeIn(fw, rules, w.Name, w, p) {
			return strconv.Itoa(p), true
		}
	}
	return "", false
}

// firstPrivateIP is the first private address of the VM's first NIC that
// has one: the address a DNAT rule translates to.
func (s *session) firstPrivateIP(vm inventory.VM) netip.Addr {
	for _, id := range vm.NICs {
		nic, err := get[inventory.NIC](s, inventory.KindNIC, id)
		if err == nil && nic != nil && len(nic.PrivateIPs) > 0 {
			return nic.PrivateIPs[0]
		}
	}
	return netip.Addr{}
}

// dnatConflict fails a grant that would open more than its source: the
// firewall SNATs all DNAT traffic, so the NSG allow rule of a grant lets in
// whatever any DNAT rule forwards to the VM's port. A user's rule that
// forwards to it from sources beyond the grant's would be opened too.
func dnatConflict(fw *inventory.Firewall, target netip.Addr, g jit.DesiredGrant) error {
	for _, c := range fw.NatRuleCollections {
		if strings.EqualFold(c.Name, FirewallCollection) {
			continue
		}
		for _, r := range c.Rules {
			if r.TranslatedAddress != target.String() || r.TranslatedPortNumber() != g.Port || !protocolsOverlap(r, g.Protocol) {
				continue
			}
			if len(r.SourceIPGroups) > 0 || len(r.SourceAddresses) == 0 || !sourcesWithin(r.SourceAddresses, g.Source) {
				return fmt.Errorf("firewall %s: DNAT rule %s/%s forwards to %s:%d from %s; a grant through the firewall would open the port to those sources too (the firewall SNATs every DNAT flow, so the NSG cannot tell them apart): narrow or remove that rule: %w",
					fw.ID, c.Name, r.Name, target, g.Port, strings.Join(r.SourceAddresses, ","), ErrUnprotectable)
			}
		}
	}
	return nil
}

func protocolsOverlap(r inventory.NatRule, p netrule.Protocol) bool {
	for _, q := range dnatProtocols(p) {
		if r.HasProtocol(q) {
			return true
		}
	}
	return false
}

// sourcesWithin reports whether every source address of a rule lies in src.
func sourcesWithin(srcs []string, src jit.Source) bool {
	for _, s := range srcs {
		var o jit.Source
		var err error
		if lo, hi, ok := strings.Cut(s, "-"); ok && !strings.Contains(s, "/") {
			// An IP range: within if both ends are.
			a, e1 := jit.ParseSource(lo)
			b, e2 := jit.ParseSource(hi)
			if e1 != nil || e2 != nil || !src.Contains(a) || !src.Contains(b) {
				return false
			}
			continue
		}
		if o, err = jit.ParseSource(s); err != nil || !src.Contains(o) {
			return false
		}
	}
	return true
}
