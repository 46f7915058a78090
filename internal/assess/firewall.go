package assess

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// jitCollection is the NAT rule collection JIT owns on a classic Azure
// Firewall (the sim provider's FirewallCollection): its rules admit one
// requester for a grant's time and are not exposures.
const jitCollection = "drawbridge-jit"

// firewallExposures lists the management ports of a VM behind a classic
// Azure Firewall that the internet reaches through the firewall: a DNAT
// rule from an internet source translates to one of the VM's private
// addresses and the port, and the NSGs on the NIC's path let the
// firewall's SNAT address (in its AzureFirewallSubnet) in. Ports already
// in have are skipped.
func (a *assessor) firewallExposures(vm *inventory.VM, paths []nicPath, have []Exposure) []Exposure {
	if vm.Firewall == "" {
		return nil
	}
	fw, ok := a.fws.get(vm.Firewall)
	if !ok || fw.ManagedByFirewallManager {
		return nil
	}
	internet := a.awsEnv.Internet()
	var out []Exposure
	for _, port := range a.ports {
		if slices.ContainsFunc(have, func(e Exposure) bool { return e.Port == port }) {
			continue
		}
	rules:
		for _, c := range fw.NatRuleCollections {
			if strings.EqualFold(c.Name, jitCollection) {
				continue
			}
			for _, r := range c.Rules {
				if r.TranslatedPortNumber() != port || !r.HasProtocol("TCP") {
					continue
				}
				src, example, ok := internetSource(r.SourceAddresses, internet)
				if !ok && len(r.SourceIPGroups) > 0 {
					// An IP group's addresses are not modelled: count it.
					src, example, ok = r.SourceIPGroups[0], netip.MustParseAddr("198.18.0.1"), true
				}
				if !ok {
					continue
				}
				for _, p := range paths {
					for _, addr := range p.nic.PrivateIPs {
						if r.TranslatedAddress != addr.String() || !a.firewallPasses(p, fw, addr, port) {
							continue
						}
						ref := netrule.RuleRef{Group: fw.ID, Rule: c.Name + "/" + r.Name, Priority: c.Priority, Access: netrule.Allow,
							Source: src, Protocol: "TCP", Ports: strings.Join(r.DestinationPorts, ",")}
						out = append(out, Exposure{Port: port, Protocol: netrule.Tcp, Interface: p.nic.ID, Address: addr,
							ExampleSource: example, Rule: ref, Path: []netrule.RuleRef{ref}})
						break rules
					}
				}
			}
		}
	}
	return out
}

// firewallPasses reports whether the NIC's NSGs let the firewall's SNAT
// address reach addr:port. Without the firewall's subnet prefix it cannot
// tell, and assumes they do.
func (a *assessor) firewallPasses(p nicPath, fw *inventory.Firewall, addr netip.Addr, port int) bool {
	if !fw.SubnetPrefix.IsValid() {
		return true
	}
	if p.path[0] == nil && p.path[1] == nil {
		return true
	}
	snat := fw.SubnetPrefix.Addr()
	for range 4 { // Azure reserves the first four addresses of a subnet
		snat = snat.Next()
	}
	v := netrule.EvaluateAzureScratch(&a.eval, p.path[:], p.env, netrule.Query{Destination: addr, Port: port, Protocol: netrule.Tcp, Source: netrule.AddressSource(snat)})
	return v.Allowed
}

// internetSource reports whether a DNAT rule's sources include an internet
// address, with the source as written and one such address.
func internetSource(srcs []string, internet netrule.AddressSet) (string, netip.Addr, bool) {
	for _, s := range srcs {
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "*", "internet", "any":
			return s, netip.MustParseAddr("198.18.0.1"), true
		}
		var first netip.Addr
		if p, err := netip.ParsePrefix(s); err == nil {
			first = p.Masked().Addr()
		} else if ad, err := netip.ParseAddr(s); err == nil {
			first = ad
		} else if lo, _, ok := strings.Cut(s, "-"); ok { // an IP range "a-b"
			first, _ = netip.ParseAddr(lo)
		}
		if first.IsValid() && internet.Contains(first) {
			return s, first, true
		}
	}
	return "", netip.Addr{}, false
}
