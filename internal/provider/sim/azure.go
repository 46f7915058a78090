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

// allowRoom is how many free priorities the deny rule leaves ahead of itself
// (between the covering rules, or the top, and the deny rule) for the allow
// rules of grants, when the NSG has that many.
const allowRoom = 10

// pathNSG is one NSG on a VM's inbound path and the VM's private addresses
// behind it (those of the NICs whose path passes through it).
type pathNSG struct {
	nsg   *netrule.NSG
	dests []netip.Addr
	nics  []string // NICs whose path passes through it, for errors
}

// azurePath returns the NSGs on the VM's inbound path in evaluation order:
// for each NIC, its subnet's NSG, then its own; each NSG once. With lenient
// set (disabling JIT), a missing NIC, subnet or NSG is skipped instead of
// failing, so that what JIT put elsewhere can still be cleaned up.
func (s *session) azurePath(vm inventory.VM, lenient bool) ([]*pathNSG, error) {
	var out []*pathNSG
	byKey := map[string]*pathNSG{}
	add := func(nsgID string, nic *inventory.NIC, via string) error {
		if nsgID == "" {
			return nil
		}
		k := inventory.Key(nsgID)
		p, ok := byKey[k]
		if !ok {
			nsg, err := get[netrule.NSG](s, inventory.KindNSG, nsgID)
			if err != nil {
				return err
			}
			if nsg == nil {
				if lenient {
					return nil
				}
				return fmt.Errorf("%s: networkSecurityGroup %s not found: %w", via, nsgID, ErrInventory)
			}
			p = &pathNSG{nsg: nsg}
			byKey[k] = p
			out = append(out, p)
		}
		for _, a := range nic.PrivateIPs {
			if !slices.Contains(p.dests, a) {
				p.dests = append(p.dests, a)
			}
		}
		p.nics = append(p.nics, nic.ID)
		return nil
	}
	for i, nicID := range vm.NICs {
		nic, err := get[inventory.NIC](s, inventory.KindNIC, nicID)
		if err != nil {
			return nil, err
		}
		if nic == nil {
			if lenient {
				continue
			}
			return nil, fmt.Errorf("virtual machine %s: nics[%d]: network interface %s not found: %w", vm.ID, i, nicID, ErrInventory)
		}
		if nic.Subnet != "" {
			sub, err := get[inventory.Subnet](s, inventory.KindSubnet, nic.Subnet)
			if err != nil {
				return nil, err
			}
			if sub == nil && !lenient {
				return nil, fmt.Errorf("network interface %s: subnet %s not found: %w", nic.ID, nic.Subnet, ErrInventory)
			}
			if sub != nil {
				if err := add(sub.NSG, nic, "subnet "+sub.ID); err != nil {
					return nil, err
				}
			}
		}
		if err := add(nic.NSG, nic, "network interface "+nic.ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// reconcileAzure makes the JIT rules of vm in every NSG match the guarded
// ports and grants. Rules of this VM in NSGs no longer on its path (a NIC
// moved) are removed too, so the result depends only on the current objects.
func (s *session) reconcileAzure(vm inventory.VM, guarded []jit.GuardedPort, grants []jit.DesiredGrant) ([]string, error) {
	path, err := s.azurePath(vm, len(guarded) == 0)
	if err != nil {
		return nil, err
	}
	fw, err := s.vmFirewall(vm, len(guarded) > 0)
	if err != nil {
		return nil, err
	}
	via, err := firewallSource(fw, grants)
	if err != nil {
		return nil, err
	}
	if len(guarded) > 0 && len(path) == 0 {
		return nil, fmt.Errorf("virtual machine %s has no network security group on any network interface or subnet, so there is nothing to put a deny rule in: %w", vm.ID, ErrUnprotectable)
	}
	onPath := map[string]bool{}
	for _, p := range path {
		onPath[inventory.Key(p.nsg.ID)] = true
	}
	// Strays: this VM's rules left in NSGs that are not on its path now.
	keys, err := s.candidates(inventory.KindNSG, func(f *Footprint) []string { return f.NSGs })
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if onPath[k] {
			continue
		}
		nsg, err := get[netrule.NSG](s, inventory.KindNSG, k)
		if err != nil {
			return nil, err
		}
		if nsg != nil && removeOwned(nsg, vm.ID, nil) {
			s.put(inventory.KindNSG, k, nsg)
		}
	}
	for _, p := range path {
		if len(guarded) > 0 && len(p.dests) == 0 {
			return nil, fmt.Errorf("network interface %s of virtual machine %s has no private IP address for the JIT deny rule in NSG %s: %w",
				strings.Join(p.nics, ", "), vm.ID, p.nsg.Name, ErrInventory)
		}
		if err := reconcileNSG(p.nsg, vm, p.dests, guarded, grants, via); err != nil {
			return nil, err
		}
		s.put(inventory.KindNSG, p.nsg.ID, p.nsg)
		if len(guarded) > 0 || len(grants) > 0 {
			s.newFP.NSGs = append(s.newFP.NSGs, inventory.Key(p.nsg.ID))
		}
	}
	if err := s.reconcileFirewalls(vm, fw, s.firstPrivateIP(vm), grants); err != nil {
		return nil, err
	}
	var enforced []string
	if len(path) > 0 {
		for _, g := range grants {
			enforced = append(enforced, g.GrantID)
		}
	}
	return enforced, nil
}

// removeOwned deletes the VM's JIT rules whose names are not in keep and
// reports whether it removed any. The user's rules keep their order.
func removeOwned(nsg *netrule.NSG, vmID string, keep map[string]bool) bool {
	dp, ap := denyPrefix(vmID), allowPrefix(vmID)
	n := len(nsg.SecurityRules)
	nsg.SecurityRules = slices.DeleteFunc(nsg.SecurityRules, func(r netrule.SecurityRule) bool {
		return (strings.HasPrefix(r.Name, dp) || strings.HasPrefix(r.Name, ap)) && !keep[r.Name]
	})
	if len(nsg.SecurityRules) == n {
		return false
	}
	if len(nsg.SecurityRules) == 0 {
		// An NSG left with no custom rules goes back to having none (nil), as
		// an inventory document that omits securityRules stores it.
		nsg.SecurityRules = nil
	}
	return true
}

func isJITRule(r netrule.SecurityRule) bool { return strings.HasPrefix(r.Name, RulePrefix) }

// reconcileNSG brings one NSG to the wanted JIT rules of one VM:
//
//   - a deny rule per guarded port, placed after the user's inbound rules
//     that cover the port (so they keep priority), or ahead of every user
//     rule if none does;
//   - an allow rule per grant, between those covering rules and the port's
//     deny rule (so a stricter user rule still wins and the grant beats the
//     deny).
//
// An existing JIT rule keeps its priority while that priority is still
// valid; its other fields are rewritten to the wanted values. New rules are
// appended, so removing them later restores the list exactly.
//
// via, if set, is the source of the allow rules instead of each grant's:
// the AzureFirewallSubnet of the classic firewall the VM is reached through.
func reconcileNSG(nsg *netrule.NSG, vm inventory.VM, dests []netip.Addr, guarded []jit.GuardedPort, grants []jit.DesiredGrant, via netip.Prefix) error {
	keep := map[string]bool{}
	for _, g := range guarded {
		keep[DenyRuleName(vm, g.Port, g.Protocol)] = true
	}
	for _, g := range grants {
		keep[AllowRuleName(vm.ID, g.GrantID)] = true
	}
	removeOwned(nsg, vm.ID, keep)

	denyPrio := map[jit.GuardedPort]int{}
	for _, g := range guarded {
		lo, loName, err := coveringMax(nsg, g.Port, g.Protocol)
		if err != nil {
			return err
		}
		want := denyRule(vm, dests, g)
		prio, err := place(nsg, want.Name, lo, netrule.MaxPriority+1, func(free []int) (int, error) {
			if len(free) == 0 {
				return 0, fmt.Errorf("NSG %s: no free inbound priority %s for JIT deny rule %s (port %d/%s): %w",
					nsg.Name, after(lo, loName), want.Name, g.Port, g.Protocol, ErrNoRoom)
			}
			return free[min(allowRoom, len(free)-1)], nil
		}, nextUserRule(nsg, lo))
		if err != nil {
			return err
		}
		want.Priority = prio
		upsert(nsg, want)
		denyPrio[g] = prio
	}
	for _, gr := range grants {
		g, _ := guardFor(guarded, gr)
		lo, loName, err := coveringMax(nsg, g.Port, g.Protocol)
		if err != nil {
			return err
		}
		d := denyPrio[g]
		want := allowRule(vm, dests, gr, via)
		prio, err := place(nsg, want.Name, lo, d, func(free []int) (int, error) {
			if len(free) == 0 {
				return 0, fmt.Errorf("NSG %s: no free inbound priority %s and before JIT deny rule %s (priority %d) for the allow rule of grant %s: %w",
					nsg.Name, after(lo, loName), DenyRuleName(vm, g.Port, g.Protocol), d, gr.GrantID, ErrNoRoom)
			}
			return free[len(free)-1], nil // closest to the deny rule
		}, d)
		if err != nil {
			return err
		}
		want.Priority = prio
		upsert(nsg, want)
	}
	return nil
}

func setDest(r *netrule.SecurityRule, dests []netip.Addr) {
	if len(dests) == 1 {
		r.DestinationAddressPrefix = dests[0].String()
		return
	}
	for _, a := range dests {
		r.DestinationAddressPrefixes = append(r.DestinationAddressPrefixes, a.String())
	}
}

func denyRule(vm inventory.VM, dests []netip.Addr, g jit.GuardedPort) netrule.SecurityRule {
	r := netrule.SecurityRule{
		Name:                 DenyRuleName(vm, g.Port, g.Protocol),
		Description:          fmt.Sprintf("drawbridge JIT: deny new inbound connections to port %d/%s of %s until access is granted", g.Port, g.Protocol, vmName(vm)),
		Direction:            netrule.Inbound,
		Access:               netrule.Deny,
		Protocol:             g.Protocol,
		SourceAddressPrefix:  "*",
		SourcePortRange:      "*",
		DestinationPortRange: strconv.Itoa(g.Port),
	}
	setDest(&r, dests)
	return r
}

func allowRule(vm inventory.VM, dests []netip.Addr, g jit.DesiredGrant, via netip.Prefix) netrule.SecurityRule {
	proto := g.Protocol
	if proto == "" {
		proto = netrule.Any
	}
	src := g.Source.String()
	if src == "" {
		src = "*"
	}
	if via.IsValid() {
		// Reached through the firewall's DNAT, which SNATs to an address
		// of its subnet; the DNAT rule carries the grant's source.
		src = via.String()
	}
	r := netrule.SecurityRule{
		Name:                 AllowRuleName(vm.ID, g.GrantID),
		Description:          fmt.Sprintf("drawbridge JIT: grant %s allows %s to port %d/%s of %s until %s", g.GrantID, src, g.Port, proto, vmName(vm), g.End.UTC().Format("2006-01-02T15:04:05Z")),
		Direction:            netrule.Inbound,
		Access:               netrule.Allow,
		Protocol:             proto,
		SourceAddressPrefix:  src,
		SourcePortRange:      "*",
		DestinationPortRange: strconv.Itoa(g.Port),
	}
	setDest(&r, dests)
	return r
}
