package azure

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
)

// Drift of a VM's DNAT rules on its classic Azure Firewall, reported the
// way drift.go reports NSG rules: against the VM's DNAT rules after its
// last successful Apply (in memory), a rule JIT still wants that is gone
// or changed, or a DNAT rule of the VM that JIT neither wrote nor wants.

// vmDNAT are a VM's JIT DNAT rules by lower-case name.
type vmDNAT map[string]inventory.NatRule

// ownDNAT picks vmID's JIT DNAT rules out of a firewall (nil: none).
func ownDNAT(vmID string, fw *inventory.Firewall) vmDNAT {
	out := vmDNAT{}
	if fw == nil {
		return out
	}
	for _, c := range fw.NatRuleCollections {
		if !strings.EqualFold(c.Name, sim.FirewallCollection) {
			continue
		}
		for _, r := range c.Rules {
			if sim.VMOwnsDNAT(vmID, r.Name) {
				out[strings.ToLower(r.Name)] = r
			}
		}
	}
	return out
}

type dnatBaselines struct {
	baselineMap[vmDNAT, inventory.NatRule]
}

// settle is baselines.settle for DNAT rules; fwID names the firewall.
func (b *dnatBaselines) settle(vmID, fwID string, found, want vmDNAT) []jit.DriftRepair {
	base, had := b.swap(vmID, want)
	if !had {
		return nil
	}
	var out []jit.DriftRepair
	for _, name := range slices.Sorted(maps.Keys(want)) {
		w := want[name]
		if _, wrote := base[name]; !wrote {
			continue
		}
		port, proto := w.TranslatedPortNumber(), ""
		if len(w.Protocols) == 1 {
			proto = strings.ToLower(w.Protocols[0])
		}
		switch cur, ok := found[name]; {
		case !ok:
			out = append(out, jit.DriftRepair{Found: fmt.Sprintf("DNAT rule %s missing from Azure Firewall %s", w.Name, fwID),
				Restored: "re-created " + w.Name + " (" + describeDNAT(w) + ")", Port: port, Protocol: proto})
		case fmt.Sprintf("%#v", cur) != fmt.Sprintf("%#v", w):
			out = append(out, jit.DriftRepair{Found: fmt.Sprintf("DNAT rule %s of Azure Firewall %s changed to %s", w.Name, fwID, describeDNAT(cur)),
				Restored: "rewrote it as " + describeDNAT(w), Port: port, Protocol: proto})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(found)) {
		_, wanted := want[name]
		_, wrote := base[name]
		if !wanted && !wrote {
			f := found[name]
			out = append(out, jit.DriftRepair{Found: fmt.Sprintf("unexpected JIT-named DNAT rule %s in Azure Firewall %s (%s)", f.Name, fwID, describeDNAT(f)),
				Restored: "deleted " + f.Name})
		}
	}
	return out
}

func describeDNAT(r inventory.NatRule) string {
	return fmt.Sprintf("from %s to %s:%s %s -> %s:%s", strings.Join(r.SourceAddresses, ","), strings.Join(r.DestinationAddresses, ","),
		strings.Join(r.DestinationPorts, ","), strings.Join(r.Protocols, ","), r.TranslatedAddress, r.TranslatedPort)
}
