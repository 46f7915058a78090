package sim

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
)

// ConnectTo reads, from a firewall as placed, where each grant's requester
// connects: the public address and port its DNAT rule listens on. Grants
// without a rule there (not through this firewall) are left out.
func ConnectTo(fw *inventory.Firewall, vmID string, grants []jit.DesiredGrant) map[string]netip.AddrPort {
	if fw == nil || len(grants) == 0 {
		return nil
	}
	rules := map[string]inventory.NatRule{}
	for _, c := range fw.NatRuleCollections {
		if !strings.EqualFold(c.Name, FirewallCollection) {
			continue
		}
		for _, r := range c.Rules {
			rules[strings.ToLower(r.Name)] = r
		}
	}
	var out map[string]netip.AddrPort
	for _, g := range grants {
		r, ok := rules[strings.ToLower(DNATRuleName(vmID, g.GrantID))]
		if !ok || len(r.DestinationAddresses) == 0 || len(r.DestinationPorts) == 0 {
			continue
		}
		a, err := netip.ParseAddr(r.DestinationAddresses[0])
		port, perr := strconv.ParseUint(r.DestinationPorts[0], 10, 16)
		if err != nil || perr != nil {
			continue // JIT writes one address and one port; anything else is not its own
		}
		if out == nil {
			out = map[string]netip.AddrPort{}
		}
		out[g.GrantID] = netip.AddrPortFrom(a, uint16(port))
	}
	return out
}
