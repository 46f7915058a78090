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
	var inv inventory.Inventory
	err := s.store.ReadTx(ctx, func(tx Tx) error {
		var err error
		inv, err = inventory.LoadAll(ctx, tx)
		return err
	})
	return inv, err
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
	byID := map[string]*pendingChange{}
	var order []string
	lookup := func(id string) (*pendingChange, bool) {
		c, ok := byID[strings.ToLower(id)]
		return c, ok
	}
	change := func(p Policy, created bool) *pendingChange {
		k := strings.ToLower(p.ID)
		if c, ok := byID[k]; ok {
			return c
		}
		p.VirtualMachines = append([]VMPolicy(nil), p.VirtualMachines...)
		c := &pendingChange{PolicyChange: PolicyChange{Policy: p, Created: created}}
		byID[k] = c
		order = append(order, k)
		return c
	}
	for _, add := range adds {
		var target *pendingChange
		for _, p := range existing {
			if _, ok := p.VM(add.VM.ID); ok {
				if c, ok := lookup(p.ID); ok {
					target = c
				} else {
					target = change(p, false)
				}
				break
			}
		}
		if target == nil {
			rid, err := resource.Parse(add.VM.ID)
			if err != nil {
				return nil, fmt.Errorf("virtual machine %s: %v", add.VM.ID, err)
			}
			if rid.ResourceGroup() == "" {
				return nil, fmt.Errorf("virtual machine %s is not inside a resource group", add.VM.ID)
			}
			if add.VM.Location == "" {
				return nil, fmt.Errorf("virtual machine %s has no location", add.VM.ID)
			}
			id := PolicyID(rid.Subscription(), rid.ResourceGroup(), add.VM.Location, name)
			if c, ok := lookup(id); ok {
				target = c
			} else {
				found := false
				for _, p := range existing {
					if strings.EqualFold(p.ID, id) {
						target, found = change(p, false), true
						break
					}
				}
				if !found {
					target = change(Policy{ID: id, Name: name, Location: add.VM.Location, Kind: "Basic"}, true)
				}
			}
		}
		i := -1
		for j, v := range target.Policy.VirtualMachines {
			if strings.EqualFold(v.ID, add.VM.ID) {
				i = j
				break
			}
		}
		if i < 0 {
			target.Policy.VirtualMachines = append(target.Policy.VirtualMachines, VMPolicy{ID: add.VM.ID})
			i = len(target.Policy.VirtualMachines) - 1
			target.changed = true
		}
		vp := target.Policy.VirtualMachines[i]
		vp.Ports = append([]PortPolicy(nil), vp.Ports...)
		for _, port := range add.Ports {
			k := slices.IndexFunc(vp.Ports, func(p PortPolicy) bool { return p.Number == port.Number })
			switch {
			case k < 0:
				vp.Ports = append(vp.Ports, port)
				target.changed = true
			case !protocolCovers(vp.Ports[k].Protocol, port.Protocol):
				target.Widened = append(target.Widened, fmt.Sprintf("%s port %d: protocol %s widened to * to guard %s too",
					lastSegment(add.VM.ID), port.Number, vp.Ports[k].Protocol, port.Protocol))
				vp.Ports[k].Protocol = netrule.Any
				target.changed = true
			}
		}
		target.Policy.VirtualMachines[i] = vp
		target.VMs = append(target.VMs, add.VM.ID)
	}
	sort.Strings(order)
	out := make([]PolicyChange, 0, len(order))
	for _, k := range order {
		c := byID[k]
		c.Unchanged = !c.Created && !c.changed
		out = append(out, c.PolicyChange)
	}
	return out, nil
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
