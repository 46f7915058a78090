package sim

import (
	"slices"
	"sort"

	"github.com/drawbridge/drawbridge/internal/inventory"
)

// KindFootprint is the object kind, keyed by VM, that records where a VM's
// JIT objects live: the NSGs holding its rules, its grant security groups,
// and the security groups where it holds a revocation. A reconcile then
// looks for leftovers only there instead of reading every NSG and security
// group in the store, which keeps one request's cost independent of the
// inventory's size.
const KindFootprint = "sim.footprint"

// Footprint lists object keys (lower-cased IDs) per kind.
type Footprint struct {
	NSGs          []string `json:"nsgs,omitempty"`
	GrantGroups   []string `json:"grantGroups,omitempty"`
	RevokedGroups []string `json:"revokedGroups,omitempty"`
	Firewalls     []string `json:"firewalls,omitempty"` // firewalls holding the VM's DNAT rules
}

func (f *Footprint) empty() bool {
	return len(f.NSGs) == 0 && len(f.GrantGroups) == 0 && len(f.RevokedGroups) == 0 && len(f.Firewalls) == 0
}

// loadFootprint reads the VM's footprint before a reconcile. Without one
// (state written before footprints existed, or lost), candidates falls back
// to scanning every object of the kind, so correctness never depends on it.
func (s *session) loadFootprint(vm inventory.VM) error {
	fp, err := get[Footprint](s, KindFootprint, vm.ID)
	if err != nil {
		return err
	}
	s.oldFP = fp
	s.newFP = &Footprint{}
	return nil
}

// candidates returns the keys of kind that may hold the VM's JIT objects.
func (s *session) candidates(kind string, recorded func(*Footprint) []string) ([]string, error) {
	if s.oldFP == nil {
		return s.keys(kind)
	}
	return sortedUnique(recorded(s.oldFP)), nil
}

// saveFootprint stores what the reconcile recorded in newFP.
func (s *session) saveFootprint(vm inventory.VM) {
	fp := s.newFP
	fp.NSGs, fp.GrantGroups, fp.RevokedGroups = sortedUnique(fp.NSGs), sortedUnique(fp.GrantGroups), sortedUnique(fp.RevokedGroups)
	fp.Firewalls = sortedUnique(fp.Firewalls)
	if fp.empty() {
		if s.oldFP != nil {
			s.del(KindFootprint, vm.ID)
		}
		return
	}
	if s.oldFP == nil || !jsonEqual(s.oldFP, fp) {
		s.put(KindFootprint, vm.ID, fp)
	}
}

func sortedUnique(ss []string) []string {
	out := slices.Clone(ss)
	sort.Strings(out)
	return slices.Compact(out)
}
