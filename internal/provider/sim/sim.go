// Package sim owns the simulated network provider: a jit.Provider that
// enforces JIT on Azure NSGs and AWS security groups held as inventory
// objects in a store.ObjectStore, with the clouds' own rules (NSG priorities
// 100-4096 unique per direction, default rules, subnet NSG then NIC NSG;
// allow-only security groups, at most five per ENI).
//
// What it owns in those objects, and nothing else:
//   - Azure: inbound rules named "drawbridge-jit-..." (RulePrefix). Deny
//     rules are per (VM, port, protocol), allow rules per grant. Every other
//     rule is the user's and is never modified, renumbered or removed.
//   - AWS: security groups whose GroupId starts with "sg-jit-" (one per
//     grant), their attachment to the instance's primary ENI, and the ingress
//     permissions it revoked from the user's groups, recorded under the
//     object kind KindRevoked so that disabling JIT puts them back exactly.
//
// NSG placement, per NSG on the VM's path (subnet NSG, NIC NSG, each NIC):
//   - "covering" user rules are inbound rules whose protocol and destination
//     port ranges overlap the guarded port (addresses are not compared);
//   - the deny rule goes after the last covering rule, before the next user
//     rule, leaving up to 10 free priorities ahead of itself for allow
//     rules; with no covering rule that window starts at 100, so the deny
//     rule is ahead of every user rule. If the window has no free priority,
//     the deny rule goes to the first free priorities further down (past
//     user rules that do not cover the port, which does not change what
//     it matches first); if there is none up to 4096, Apply fails with
//     ErrNoRoom naming the NSG and the covering rule;
//   - a grant's allow rule takes the highest free priority between the last
//     covering rule and the deny rule, or fails with ErrNoRoom.
//
// Apply is level-triggered and idempotent: it computes the wanted objects
// from the Desired state and the objects as they are now (never from a log
// of what it did before), writes only objects whose JSON changes, and does
// all reads and writes in one ObjectTx. Check runs the same computation on
// in-memory copies and writes nothing.
package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Errors Check and Apply wrap, so callers can tell a VM JIT cannot protect
// (or a firewall without room) from a storage failure.
var (
	// ErrUnprotectable: the VM has nothing JIT could put a rule in (no NSG on
	// any NIC or subnet, no ENI), or its cloud is not simulated.
	ErrUnprotectable = errors.New("JIT cannot protect this virtual machine")
	// ErrNoRoom: no free NSG priority or security group slot for a JIT object.
	ErrNoRoom = errors.New("no room for a JIT rule")
	// ErrInventory: an object the VM refers to is missing or malformed.
	ErrInventory = errors.New("inventory is inconsistent")
)

// Provider is the simulated network provider. It is safe for concurrent use
// as far as the ObjectStore serialises conflicting transactions.
type Provider struct {
	objs store.ObjectStore
}

var _ jit.Provider = (*Provider)(nil)

// New returns a provider over the inventory objects in objs.
func New(objs store.ObjectStore) *Provider { return &Provider{objs: objs} }

// Check reports whether Apply(vm, desired) would succeed, changing nothing.
func (p *Provider) Check(ctx context.Context, vm inventory.VM, desired jit.Desired) error {
	return p.objs.ObjectTx(ctx, func(o store.Objects) error {
		s := newSession(ctx, o)
		_, err := s.reconcile(vm, desired)
		return err // nothing is flushed: the copies are dropped
	})
}

// Apply makes the VM's simulated firewall match desired, in one transaction.
// On error nothing is written.
func (p *Provider) Apply(ctx context.Context, vm inventory.VM, desired jit.Desired) (jit.Observed, error) {
	var obs jit.Observed
	err := p.objs.ObjectTx(ctx, func(o store.Objects) error {
		s := newSession(ctx, o)
		var err error
		if obs.Enforced, err = s.reconcile(vm, desired); err != nil {
			return err
		}
		obs.ConnectTo = s.connectTo
		return s.flush()
	})
	if err != nil {
		return jit.Observed{}, err
	}
	return obs, nil
}

// ApplyTx is Apply inside the caller's transaction (jit.TxProvider): the
// firewall change commits or rolls back together with the caller's change
// to grants and policies, so a failed request leaves nothing behind. On
// error nothing has been written to objs.
func (p *Provider) ApplyTx(ctx context.Context, objs store.Objects, vm inventory.VM, desired jit.Desired) (jit.Observed, error) {
	s := newSession(ctx, objs)
	enforced, err := s.reconcile(vm, desired)
	if err != nil {
		return jit.Observed{}, err
	}
	if err := s.flush(); err != nil {
		return jit.Observed{}, err
	}
	return jit.Observed{Enforced: enforced, ConnectTo: s.connectTo}, nil
}

func (s *session) reconcile(vm inventory.VM, d jit.Desired) ([]string, error) {
	if d.VMID != "" && !strings.EqualFold(d.VMID, vm.ID) {
		return nil, fmt.Errorf("desired state is for virtual machine %s, not %s", d.VMID, vm.ID)
	}
	guarded, err := normGuarded(vm, d.Guarded)
	if err != nil {
		return nil, err
	}
	grants := usableGrants(guarded, d.Grants)
	for _, g := range grants {
		// Fail closed: an unset source must not become "any".
		if g.Source.IsZero() {
			return nil, fmt.Errorf("virtual machine %s: grant %s: source is not set", vm.ID, g.GrantID)
		}
	}
	if err := s.loadFootprint(vm); err != nil {
		return nil, err
	}
	var enforced []string
	switch vm.Cloud {
	case inventory.AWS:
		enforced, err = s.reconcileAWS(vm, guarded, grants)
	case inventory.Azure, "":
		enforced, err = s.reconcileAzure(vm, guarded, grants)
	default:
		return nil, fmt.Errorf("virtual machine %s: cloud %q is not simulated by the sim provider (azure, aws): %w", vm.ID, vm.Cloud, ErrUnprotectable)
	}
	if err != nil {
		return nil, err
	}
	s.saveFootprint(vm)
	return enforced, nil
}

// normGuarded returns the guarded ports sorted by (port, protocol), so that
// placement (which depends on order) is the same on every Apply.
func normGuarded(vm inventory.VM, in []jit.GuardedPort) ([]jit.GuardedPort, error) {
	out := slices.Clone(in)
	for i, g := range out {
		if g.Port < 1 || g.Port > 65535 {
			return nil, fmt.Errorf("virtual machine %s: guarded port [%d]: port %d is not between 1 and 65535", vm.ID, i, g.Port)
		}
		if g.Protocol == "" {
			out[i].Protocol = "*"
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return out[i].Protocol < out[j].Protocol
	})
	return slices.CompactFunc(out, func(a, b jit.GuardedPort) bool { return a == b }), nil
}

// usableGrants keeps the grants whose port JIT guards, sorted by grant ID.
// A grant for an unguarded port has no deny rule to go ahead of (the port
// is not closed by JIT), so it is not enforced and not reported as enforced;
// with no guarded port at all JIT is disabled and no grant applies.
func usableGrants(guarded []jit.GuardedPort, in []jit.DesiredGrant) []jit.DesiredGrant {
	var out []jit.DesiredGrant
	for _, g := range in {
		if _, ok := guardFor(guarded, g); ok && g.GrantID != "" {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GrantID < out[j].GrantID })
	return slices.CompactFunc(out, func(a, b jit.DesiredGrant) bool { return a.GrantID == b.GrantID })
}

// guardFor returns the guarded port a grant opens: same port, and the same
// protocol if guarded so, else an overlapping one.
func guardFor(guarded []jit.GuardedPort, g jit.DesiredGrant) (jit.GuardedPort, bool) {
	var match jit.GuardedPort
	found := false
	for _, gp := range guarded {
		if gp.Port != g.Port {
			continue
		}
		proto := g.Protocol
		if proto == "" {
			proto = "*"
		}
		if gp.Protocol == proto {
			return gp, true
		}
		if !found && gp.Protocol.Overlaps(proto) {
			match, found = gp, true
		}
	}
	return match, found
}

// ---- session: in-memory copies of the objects one reconcile touches ----
