package inventory

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// NatRuleCollection is a classic Azure Firewall DNAT rule collection
// (properties.natRuleCollections[] of Microsoft.Network/azureFirewalls).
// Collections are evaluated by priority, lowest first.
type NatRuleCollection struct {
	Name     string    `json:"name"`
	Priority int       `json:"priority"`
	Action   string    `json:"action,omitempty"` // "Dnat" (the only action classic NAT collections take)
	Rules    []NatRule `json:"rules,omitempty"`
}

// NatRule is one DNAT rule: traffic from SourceAddresses to one of
// DestinationAddresses (the firewall's public IPs) on DestinationPorts is
// translated to TranslatedAddress:TranslatedPort.
type NatRule struct {
	Name            string   `json:"name"`
	Description     string   `json:"description,omitempty"`
	SourceAddresses []string `json:"sourceAddresses,omitempty"`
	// SourceIPGroups are IDs of IP groups (their addresses are not
	// modelled: the assessment counts such a rule as from the internet,
	// and a grant is not taken to contain it).
	SourceIPGroups       []string `json:"sourceIpGroups,omitempty"`
	DestinationAddresses []string `json:"destinationAddresses,omitempty"`
	DestinationPorts     []string `json:"destinationPorts,omitempty"`
	Protocols            []string `json:"protocols,omitempty"` // "TCP", "UDP", "Any", "ICMP"
	TranslatedAddress    string   `json:"translatedAddress,omitempty"`
	TranslatedPort       string   `json:"translatedPort,omitempty"`
}

// HasProtocol reports whether the rule matches protocol p ("TCP" or "UDP").
func (r NatRule) HasProtocol(p string) bool {
	for _, q := range r.Protocols {
		if strings.EqualFold(q, p) || strings.EqualFold(q, "Any") {
			return true
		}
	}
	return false
}

// ListensOn reports whether the rule takes traffic for addr:port of
// protocol p: a port already in use on that address cannot get another
// DNAT rule.
func (r NatRule) ListensOn(addr netip.Addr, port int, p string) bool {
	if !r.HasProtocol(p) {
		return false
	}
	onAddr := false
	for _, d := range r.DestinationAddresses {
		if d == "*" {
			onAddr = true
			break
		}
		if a, err := netip.ParseAddr(d); err == nil && a == addr {
			onAddr = true
			break
		}
		if pf, err := netip.ParsePrefix(d); err == nil && pf.Contains(addr) {
			onAddr = true
			break
		}
	}
	if !onAddr {
		return false
	}
	for _, ps := range r.DestinationPorts {
		lo, hi, err := portRange(ps)
		if err == nil && port >= lo && port <= hi {
			return true
		}
	}
	return false
}

// TranslatedPortNumber is the rule's translated port as a number (0 when
// unset or not a number).
func (r NatRule) TranslatedPortNumber() int {
	n, err := strconv.Atoi(strings.TrimSpace(r.TranslatedPort))
	if err != nil {
		return 0
	}
	return n
}

// portRange parses "22", "1000-2000" or "*".
func portRange(s string) (int, int, error) {
	s = strings.TrimSpace(s)
	if s == "*" {
		return 1, 65535, nil
	}
	a, b, isRange := strings.Cut(s, "-")
	lo, err := strconv.Atoi(a)
	if err != nil {
		return 0, 0, fmt.Errorf("port %q is not a number or range", s)
	}
	hi := lo
	if isRange {
		if hi, err = strconv.Atoi(b); err != nil {
			return 0, 0, fmt.Errorf("port %q is not a number or range", s)
		}
	}
	if lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("port %q is outside 1-65535", s)
	}
	return lo, hi, nil
}

// validateFirewall checks one firewall's own fields (at names it).
func (v *validator) validateFirewall(at string, f Firewall) {
	if f.SubnetPrefix.IsValid() && f.SubnetPrefix.Masked() != f.SubnetPrefix {
		v.add(at, "subnetPrefix", "%s has host bits set; the prefix is %s", f.SubnetPrefix, f.SubnetPrefix.Masked())
	}
	for j, a := range f.PublicIPs {
		if !a.IsValid() {
			v.add(at, fmt.Sprintf("publicIPAddresses[%d]", j), "address is not set")
		}
	}
	names := map[string]bool{}
	for j, c := range f.NatRuleCollections {
		cat := fmt.Sprintf("natRuleCollections[%d]", j)
		if c.Name == "" {
			v.add(at, cat+".name", "name is required")
		} else if names[strings.ToLower(c.Name)] {
			v.add(at, cat+".name", "duplicate collection name %q", c.Name)
		}
		names[strings.ToLower(c.Name)] = true
		if c.Priority < 100 || c.Priority > 65000 {
			v.add(at, cat+".priority", "%d is outside the range 100-65000", c.Priority)
		}
		if c.Action != "" && !strings.EqualFold(c.Action, "Dnat") {
			v.add(at, cat+".action", "%q: classic NAT rule collections take only the action Dnat", c.Action)
		}
		for k, r := range c.Rules {
			rat := fmt.Sprintf("%s.rules[%d]", cat, k)
			if r.Name == "" {
				v.add(at, rat+".name", "name is required")
			}
			for m, p := range r.DestinationPorts {
				if _, _, err := portRange(p); err != nil {
					v.add(at, fmt.Sprintf("%s.destinationPorts[%d]", rat, m), "%v", err)
				}
			}
			if r.TranslatedPort != "" && r.TranslatedPortNumber() == 0 {
				v.add(at, rat+".translatedPort", "%q is not a port number", r.TranslatedPort)
			}
		}
	}
}
