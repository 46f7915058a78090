package azure

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
)

// Drift detection. Apply is level-triggered, so a deleted deny rule is
// re-created by the next Apply whatever happened; telling that repair
// apart from an ordinary change (an enable, a new grant) needs what JIT
// itself last left in Azure. The provider keeps it per VM, in memory: the
// VM's JIT rules after its last successful Apply (the baseline). A later
// Apply reports as drift:
//   - a rule of the baseline that JIT still wants but is gone or changed
//     (priority aside: the placement may move JIT's own rules);
//   - a JIT-named rule of this VM that JIT neither wrote nor wants.
//
// A restarted server has no baseline: its first Apply of each VM repairs
// whatever drifted while it was down without reporting it as drift.

// vmRule is one of a VM's JIT rules on one NSG.
type vmRule struct {
	nsg  string // the NSG's ID as the path names it
	rule netrule.SecurityRule
}

// vmRules are a VM's JIT rules by NSG key and lower-case rule name.
type vmRules map[string]vmRule

func ruleKey(nsgID, name string) string { return inventory.Key(nsgID) + "|" + strings.ToLower(name) }

// ownRules picks vmID's JIT rules out of nsgs.
func ownRules(vmID string, nsgs []netrule.NSG) vmRules {
	out := vmRules{}
	for _, n := range nsgs {
		for _, r := range n.SecurityRules {
			if sim.VMOwnsRule(vmID, r.Name) {
				out[ruleKey(n.ID, r.Name)] = vmRule{nsg: n.ID, rule: r}
			}
		}
	}
	return out
}

// sameRule compares two rules apart from their priority.
func sameRule(a, b netrule.SecurityRule) bool {
	a.Priority, b.Priority = 0, 0
	a.Name, b.Name = strings.ToLower(a.Name), strings.ToLower(b.Name)
	return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b)
}

// baselineMap holds, per VM key, what a plan last wrote: the baseline the
// next plan's reading is compared with.
type baselineMap[T ~map[string]E, E any] struct {
	mu sync.Mutex
	m  map[string]T // VM key
}

// swap makes want the VM's baseline (none if want is empty) and returns
// the one before it, if there was one.
func (b *baselineMap[T, E]) swap(vmID string, want T) (base T, had bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]T{}
	}
	k := inventory.Key(vmID)
	base, had = b.m[k]
	if len(want) == 0 {
		delete(b.m, k)
	} else {
		b.m[k] = want
	}
	return base, had
}

type baselines struct{ baselineMap[vmRules, vmRule] }

// settle compares what the plan read (found) with the VM's baseline and
// what it wrote (want), returns the drift repaired, and makes want the new
// baseline. Call it only after the plan's writes all landed.
func (b *baselines) settle(vmID string, found, want vmRules) []jit.DriftRepair {
	base, had := b.swap(vmID, want)
	if !had {
		return nil
	}
	var out []jit.DriftRepair
	for _, key := range slices.Sorted(maps.Keys(want)) {
		w := want[key]
		if _, wrote := base[key]; !wrote {
			continue // new since the baseline: an ordinary change
		}
		cur, ok := found[key]
		switch {
		case !ok:
			out = append(out, onPort(jit.DriftRepair{
				Found:    fmt.Sprintf("%s rule %s missing from NSG %s", accessWord(w.rule), w.rule.Name, w.nsg),
				Restored: fmt.Sprintf("re-created %s at priority %d", w.rule.Name, w.rule.Priority),
			}, w.rule))
		case !sameRule(cur.rule, w.rule):
			out = append(out, onPort(jit.DriftRepair{
				Found:    fmt.Sprintf("rule %s of NSG %s changed to %s", w.rule.Name, w.nsg, describeRule(cur.rule)),
				Restored: fmt.Sprintf("rewrote it as %s", describeRule(w.rule)),
			}, w.rule))
		}
	}
	for _, key := range slices.Sorted(maps.Keys(found)) {
		f := found[key]
		_, wanted := want[key]
		_, wrote := base[key]
		if !wanted && !wrote {
			out = append(out, jit.DriftRepair{
				Found:    fmt.Sprintf("unexpected JIT-named rule %s in NSG %s (%s)", f.rule.Name, f.nsg, describeRule(f.rule)),
				Restored: "deleted " + f.rule.Name,
			})
		}
	}
	return out
}

// onPort names the port of a JIT rule (they are each on one port).
func onPort(d jit.DriftRepair, r netrule.SecurityRule) jit.DriftRepair {
	if n, err := strconv.Atoi(r.DestinationPortRange); err == nil && len(r.DestinationPortRanges) == 0 {
		d.Port, d.Protocol = n, strings.ToLower(string(r.Protocol))
	}
	return d
}

func accessWord(r netrule.SecurityRule) string {
	if r.Access == netrule.Deny {
		return "deny"
	}
	return "allow"
}

func describeRule(r netrule.SecurityRule) string {
	return fmt.Sprintf("%s %s %s from %s to %s:%s", r.Access, r.Direction, r.Protocol,
		strings.Join(r.Sources(), ","), strings.Join(r.Destinations(), ","), strings.Join(joinPorts(r), ","))
}

func joinPorts(r netrule.SecurityRule) []string {
	if r.DestinationPortRange != "" {
		return append([]string{r.DestinationPortRange}, r.DestinationPortRanges...)
	}
	return r.DestinationPortRanges
}
