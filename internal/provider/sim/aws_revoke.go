package sim

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// reconcileRevocations sets this VM's holds on every user security group of
// its ENIs (and drops its holds on groups it no longer uses), then
// recomputes each such group from the user's permissions and all holds.
func (s *session) reconcileRevocations(vm inventory.VM, enis []*inventory.ENI, guarded []jit.GuardedPort) error {
	vmKey := inventory.Key(vm.ID)
	groups, attached, err := s.revocationGroups(vmKey, enis)
	if err != nil {
		return err
	}
	for _, k := range groups {
		if err := s.reconcileRevocation(k, vmKey, attached[k], guarded); err != nil {
			return err
		}
	}
	return nil
}

// revocationGroups returns the keys of the user security groups to
// recompute: those attached to the ENIs (attached maps each to its ENI ID,
// for errors), then those whose record still names this VM as a holder.
func (s *session) revocationGroups(vmKey string, enis []*inventory.ENI) ([]string, map[string]string, error) {
	var groups []string
	attached := map[string]string{} // group key -> ENI ID, for errors
	for _, eni := range enis {
		for _, id := range eni.SecurityGroups {
			k := inventory.Key(id)
			if strings.HasPrefix(k, GrantGroupPrefix) || attached[k] != "" {
				continue
			}
			attached[k] = eni.ID
			groups = append(groups, k)
		}
	}
	recKeys, err := s.candidates(KindRevoked, func(f *Footprint) []string { return f.RevokedGroups })
	if err != nil {
		return nil, nil, err
	}
	for _, k := range recKeys {
		if attached[k] != "" {
			continue
		}
		rec, err := get[Revocation](s, KindRevoked, k)
		if err != nil {
			return nil, nil, err
		}
		if rec != nil && slices.ContainsFunc(rec.Holders, func(h Holder) bool { return h.VMID == vmKey }) {
			groups = append(groups, k)
		}
	}
	return groups, attached, nil
}

// reconcileRevocation sets this VM's hold on group k (held while the group
// is attached, eniID, and ports are guarded) and recomputes the group's
// permissions and its KindRevoked record from the user's permissions and
// all holds.
func (s *session) reconcileRevocation(k, vmKey, eniID string, guarded []jit.GuardedPort) error {
	sg, err := get[netrule.SecurityGroup](s, inventory.KindSecurityGroup, k)
	if err != nil {
		return err
	}
	rec, err := get[Revocation](s, KindRevoked, k)
	if err != nil {
		return err
	}
	if sg == nil {
		if eniID != "" && len(guarded) > 0 {
			return fmt.Errorf("network interface %s: security group %s not found: %w", eniID, k, ErrInventory)
		}
		s.forgetHold(k, vmKey, rec)
		return nil
	}
	var holders []Holder
	if rec != nil {
		holders = slices.DeleteFunc(slices.Clone(rec.Holders), func(h Holder) bool { return h.VMID == vmKey })
	}
	if eniID != "" && len(guarded) > 0 {
		holders = append(holders, Holder{VMID: vmKey, Ports: slices.Clone(guarded)})
		s.newFP.RevokedGroups = append(s.newFP.RevokedGroups, k)
	}
	sort.Slice(holders, func(i, j int) bool { return holders[i].VMID < holders[j].VMID })

	base := userPermissions(sg.IPPermissions, rec)
	var perms []netrule.IPPermission
	if len(holders) == 0 {
		perms = base
		if rec != nil {
			s.del(KindRevoked, k)
		}
	} else {
		var revoked []RevokedPermission
		var rem []netrule.IPPermission
		perms, revoked, rem = revoke(base, holders)
		nrec := &Revocation{GroupID: sg.GroupID, Holders: holders, Revoked: revoked, Remainders: rem}
		if rec == nil || !jsonEqual(rec, nrec) {
			s.put(KindRevoked, k, nrec)
		}
	}
	if !jsonEqual(sg.IPPermissions, perms) {
		sg.IPPermissions = perms
		s.put(inventory.KindSecurityGroup, k, sg)
	}
	return nil
}

// forgetHold drops this VM's hold on group k, which is gone: there is
// nothing to restore into.
func (s *session) forgetHold(k, vmKey string, rec *Revocation) {
	if rec == nil {
		return
	}
	rec.Holders = slices.DeleteFunc(rec.Holders, func(h Holder) bool { return h.VMID == vmKey })
	if len(rec.Holders) == 0 {
		s.del(KindRevoked, k)
	} else {
		s.put(KindRevoked, k, rec)
	}
}

// userPermissions recovers the group's permissions as the user had them:
// the current ones without JIT's remainders, with the revoked ones back at
// their indices. With no record the current list is the user's. A revoked
// source someone re-added meanwhile (drift) is the same EC2 rule as the
// recorded one, so it is dropped rather than restored twice.
func userPermissions(cur []netrule.IPPermission, rec *Revocation) []netrule.IPPermission {
	if rec == nil || len(rec.Revoked) == 0 && len(rec.Remainders) == 0 {
		return cur
	}
	out := slices.Clone(cur)
	for _, r := range rec.Remainders {
		if i := slices.IndexFunc(out, func(p netrule.IPPermission) bool { return jsonEqual(p, r) }); i >= 0 {
			out = slices.Delete(out, i, i+1)
		}
	}
	out = dropRevokedSources(out, rec.Revoked)
	revoked := slices.Clone(rec.Revoked)
	sort.SliceStable(revoked, func(i, j int) bool { return revoked[i].Index < revoked[j].Index })
	for _, rv := range revoked {
		out = slices.Insert(out, min(max(rv.Index, 0), len(out)), rv.Permission)
	}
	return out
}

// held is one (EC2 protocol, port) a holder needs closed.
type held struct {
	proto string // "tcp" or "udp"
	port  int
}

func heldPorts(holders []Holder) []held {
	var out []held
	for _, h := range holders {
		for _, g := range h.Ports {
			for _, p := range g.Protocol.EC2Protocols() {
				x := held{p, g.Port}
				if !slices.Contains(out, x) {
					out = append(out, x)
				}
			}
		}
	}
	return out
}

// revoke takes every permission of base that lets in a held port out of the
// list and puts in its place the remainder permissions (the same sources,
// the ports and protocols it allowed minus the held ones).
func revoke(base []netrule.IPPermission, holders []Holder) ([]netrule.IPPermission, []RevokedPermission, []netrule.IPPermission) {
	hs := heldPorts(holders)
	out := make([]netrule.IPPermission, 0, len(base))
	var revoked []RevokedPermission
	var rems []netrule.IPPermission
	for i, p := range base {
		var cov []held
		for _, h := range hs {
			if permCovers(p, h) {
				cov = append(cov, h)
			}
		}
		if len(cov) == 0 {
			out = append(out, p)
			continue
		}
		revoked = append(revoked, RevokedPermission{Index: i, Permission: p})
		r := remainder(p, cov)
		out = append(out, r...)
		rems = append(rems, r...)
	}
	if len(revoked) == 0 {
		return base, nil, nil // untouched, down to a nil list staying nil
	}
	return out, revoked, rems
}

func permCovers(p netrule.IPPermission, h held) bool {
	switch p.Protocol() {
	case netrule.Any:
		return true
	case netrule.Tcp:
		return h.proto == "tcp" && p.Ports().Contains(h.port)
	case netrule.Udp:
		return h.proto == "udp" && p.Ports().Contains(h.port)
	}
	return false
}

func portsOf(cov []held, proto string) []int {
	var out []int
	for _, h := range cov {
		if h.proto == proto {
			out = append(out, h.port)
		}
	}
	return out
}

// subtract returns the sub-ranges of r without the given ports, ascending.
func subtract(r netrule.PortRange, ports []int) []netrule.PortRange {
	ps := slices.Clone(ports)
	slices.Sort(ps)
	var out []netrule.PortRange
	from := r.From
	for _, p := range ps {
		if p < from || p > r.To {
			continue
		}
		if p > from {
			out = append(out, netrule.PortRange{From: from, To: p - 1})
		}
		from = p + 1
	}
	if from <= r.To {
		out = append(out, netrule.PortRange{From: from, To: r.To})
	}
	return out
}
