package jit

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// Inventory returns every stored inventory object (VMs, NICs, networks,
// NSGs, firewalls, ENIs, security groups, settings) as the store holds it
// now, including the rules providers added: what the assessment looks at.
func (s *Service) Inventory(ctx context.Context) (inventory.Inventory, error) {
	return readTx(ctx, s.store, func(tx Tx) (inventory.Inventory, error) { return inventory.LoadAll(ctx, tx) })
}

// RunsProvider reports whether this service has a provider of that name.
func (s *Service) RunsProvider(name string) bool {
	_, ok := s.providers.For(name)
	return ok
}

// VMPorts asks for ports to be guarded on one VM (in its policy).
type VMPorts struct {
	VM    inventory.VM
	Ports []PortPolicy
}

// PolicyChange is one policy to PUT so that VMs get their ports guarded.
type PolicyChange struct {
	Policy  Policy
	Created bool     // no policy with this ID existed
	VMs     []string // the VMs of the request that this policy now guards
	// Widened says, per port whose existing entry had another protocol
	// than the one asked for (UDP where TCP is exposed), that its protocol
	// became "*": a VM has one entry per port number, so widening it is
	// the only way to guard both.
	Widened []string
	// Unchanged is true when the policy already guarded everything asked
	// (writing it again only re-applies it).
	Unchanged bool
}

// pendingChange is a PolicyChange being built.
type pendingChange struct {
	PolicyChange
	changed bool
}

// MergePorts works out which policies to create or extend so that every
// VM of adds guards (at least) its ports. A VM that already belongs to a
// policy gets the ports added to its entry in that policy; ports it
// already guards keep their settings, but for a protocol that does not
// cover the one asked for, which becomes "*" (PolicyChange.Widened). A VM without a policy is added to
// the policy named name in its subscription, resource group and location,
// which is created if it does not exist. Other VMs of those policies are
// kept as they are. Pure: existing is every policy there is.
func MergePorts(existing []Policy, adds []VMPorts, name string) ([]PolicyChange, error) {
	m := portMerger{existing: existing, name: name, byID: map[string]*pendingChange{}}
	for _, add := range adds {
		target, err := m.target(add.VM)
		if err != nil {
			return nil, err
		}
		target.addPorts(add)
	}
	sort.Strings(m.order)
	out := make([]PolicyChange, 0, len(m.order))
	for _, k := range m.order {
		c := m.byID[k]
		c.Unchanged = !c.Created && !c.changed
		out = append(out, c.PolicyChange)
	}
	return out, nil
}

// portMerger holds MergePorts' working set: the policies changed so far,
// by lower-cased ID, in the order first touched.
type portMerger struct {
	existing []Policy
	name     string
	byID     map[string]*pendingChange
	order    []string
}

// change returns the working copy of p, making one on first use.
func (m *portMerger) change(p Policy, created bool) *pendingChange {
	k := strings.ToLower(p.ID)
	if c, ok := m.byID[k]; ok {
		return c
	}
	p.VirtualMachines = append([]VMPolicy(nil), p.VirtualMachines...)
	c := &pendingChange{PolicyChange: PolicyChange{Policy: p, Created: created}}
	m.byID[k] = c
	m.order = append(m.order, k)
	return c
}

// target is the policy vm goes into: the one already guarding it, else
// the policy named m.name of its subscription, resource group and
// location (created if missing).
func (m *portMerger) target(vm inventory.VM) (*pendingChange, error) {
	for _, p := range m.existing {
		if _, ok := p.VM(vm.ID); ok {
			return m.change(p, false), nil
		}
	}
	rid, err := resource.Parse(vm.ID)
	if err != nil {
		return nil, fmt.Errorf("virtual machine %s: %v", vm.ID, err)
	}
	if rid.ResourceGroup() == "" {
		return nil, fmt.Errorf("virtual machine %s is not inside a resource group", vm.ID)
	}
	if vm.Location == "" {
		return nil, fmt.Errorf("virtual machine %s has no location", vm.ID)
	}
	id := PolicyID(rid.Subscription(), rid.ResourceGroup(), vm.Location, m.name)
	if c, ok := m.byID[strings.ToLower(id)]; ok {
		return c, nil
	}
	for _, p := range m.existing {
		if strings.EqualFold(p.ID, id) {
			return m.change(p, false), nil
		}
	}
	return m.change(Policy{ID: id, Name: m.name, Location: vm.Location, Kind: "Basic"}, true), nil
}

// addPorts puts add's ports on its VM in c, widening a protocol that does
// not cover the one asked for.
func (c *pendingChange) addPorts(add VMPorts) {
	i := slices.IndexFunc(c.Policy.VirtualMachines, func(v VMPolicy) bool { return strings.EqualFold(v.ID, add.VM.ID) })
	if i < 0 {
		c.Policy.VirtualMachines = append(c.Policy.VirtualMachines, VMPolicy{ID: add.VM.ID})
		i = len(c.Policy.VirtualMachines) - 1
		c.changed = true
	}
	vp := c.Policy.VirtualMachines[i]
	vp.Ports = append([]PortPolicy(nil), vp.Ports...)
	for _, port := range add.Ports {
		k := slices.IndexFunc(vp.Ports, func(p PortPolicy) bool { return p.Number == port.Number })
		switch {
		case k < 0:
			vp.Ports = append(vp.Ports, port)
			c.changed = true
		case !protocolCovers(vp.Ports[k].Protocol, port.Protocol):
			c.Widened = append(c.Widened, fmt.Sprintf("%s port %d: protocol %s widened to * to guard %s too",
				lastSegment(add.VM.ID), port.Number, vp.Ports[k].Protocol, port.Protocol))
			vp.Ports[k].Protocol = netrule.Any
			c.changed = true
		}
	}
	c.Policy.VirtualMachines[i] = vp
	c.VMs = append(c.VMs, add.VM.ID)
}

// protocolCovers reports whether a policy port of protocol have guards
// traffic of protocol want (any spelling: TCP, Tcp, *).
func protocolCovers(have, want netrule.Protocol) bool {
	h, err1 := netrule.ParseProtocol(string(have))
	w, err2 := netrule.ParseProtocol(string(want))
	if err1 != nil || err2 != nil {
		return strings.EqualFold(string(have), string(want))
	}
	return h == netrule.Any || h == w
}

func lastSegment(id string) string { return id[strings.LastIndexByte(id, '/')+1:] }
