package jit

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/resource"
	"github.com/drawbridge/drawbridge/internal/store"
)

// PutPolicy creates or replaces a policy and enables JIT on its VMs' ports.
// VMs or ports dropped from the policy have JIT disabled and their grants end
// with PolicyRemoved. If a provider cannot protect a VM, nothing is stored.
func (s *Service) PutPolicy(ctx context.Context, p Policy) (Policy, error) {
	p, err := validatePolicy(p)
	if err != nil {
		return Policy{}, err
	}
	t, err := readTx(ctx, s.store, func(tx Tx) (policyTargets, error) { return loadPolicyTargets(ctx, tx, p) })
	if err != nil {
		return Policy{}, err
	}
	if err := s.checkPolicyProviders(ctx, p, t.vms); err != nil {
		return Policy{}, err
	}
	affected := map[string]string{} // key -> VM ID
	for _, v := range append(append([]VMPolicy(nil), p.VirtualMachines...), t.old.VirtualMachines...) {
		affected[inventory.Key(v.ID)] = v.ID
	}
	stored, after, err := write(ctx, s, slices.Collect(maps.Keys(affected)), func(c *change) (Policy, error) {
		return s.putPolicy(c, ActorFrom(ctx), p, t, sortedValues(affected))
	})
	if errors.Is(err, store.ErrConflict) && !errors.As(err, new(*FieldError)) {
		// A concurrent PutPolicy claimed one of the VMs after the check.
		return Policy{}, conflict("properties.virtualMachines", "%v", err)
	}
	if err != nil {
		return Policy{}, err
	}
	if len(after.failures) > 0 {
		stored.ProvisioningState = ProvisioningFailed
		var msgs []string
		for _, e := range after.failures {
			msgs = append(msgs, e.Error())
		}
		stored.ProvisioningError = strings.Join(msgs, "; ")
		_ = s.store.InTx(ctx, func(tx Tx) error { return tx.PutPolicy(ctx, stored) })
	}
	return stored, nil
}

// validatePolicy normalises p and checks its ID names it.
func validatePolicy(p Policy) (Policy, error) {
	p, err := NormalizePolicy(p)
	if err != nil {
		return Policy{}, err
	}
	id, err := resource.Parse(p.ID)
	if err != nil {
		return Policy{}, invalid("id", "%v", err)
	}
	if !strings.EqualFold(id.Name(), p.Name) {
		return Policy{}, invalid("name", "name %q does not match the policy ID %s", p.Name, p.ID)
	}
	return p, nil
}

// policyTargets is what a policy being put refers to: the policy it
// replaces, if any, and its VMs by inventory key.
type policyTargets struct {
	old    Policy
	hadOld bool
	vms    map[string]inventory.VM
}

// loadPolicyTargets reads p's VMs and the policy it replaces; a VM missing
// from the inventory or guarded by another policy refuses p.
func loadPolicyTargets(ctx context.Context, tx Tx, p Policy) (policyTargets, error) {
	t := policyTargets{vms: map[string]inventory.VM{}}
	o, err := tx.GetPolicy(ctx, p.ID)
	switch {
	case err == nil:
		t.old, t.hadOld = o, true
	case !errors.Is(err, store.ErrNotFound):
		return t, err
	}
	for i, v := range p.VirtualMachines {
		field := fmt.Sprintf("properties.virtualMachines[%d].id", i)
		vm, err := inventory.GetVM(ctx, tx, v.ID)
		if err != nil {
			return t, orNotFound(err, field, "virtual machine %s is not in the inventory", v.ID)
		}
		other, err := tx.PolicyForVM(ctx, v.ID)
		if err == nil && !strings.EqualFold(other.ID, p.ID) {
			return t, conflict(field, "virtual machine %s is already guarded by policy %s", v.ID, other.ID)
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return t, err
		}
		t.vms[inventory.Key(v.ID)] = vm
	}
	return t, nil
}

// checkPolicyProviders asks each VM's provider whether it can protect it:
// a VM it cannot protect fails the whole call. Providers in the store are
// checked by applying inside the writing transaction instead.
func (s *Service) checkPolicyProviders(ctx context.Context, p Policy, vms map[string]inventory.VM) error {
	for i, v := range p.VirtualMachines {
		field := fmt.Sprintf("properties.virtualMachines[%d].id", i)
		vm := vms[inventory.Key(v.ID)]
		prov, err := s.providerFor(vm)
		if err != nil {
			return conflict(field, "%v", err)
		}
		if _, inTx := prov.(TxProvider); inTx {
			continue
		}
		if err := prov.Check(ctx, vm, Desired{VMID: vm.ID, Guarded: guardedPorts(v)}); err != nil {
			return conflict(field, "cannot enable JIT on %s: %v", v.ID, err)
		}
	}
	return nil
}

// putPolicy stores p, ends the grants on ports it no longer guards, and
// applies the providers that keep their state in the store, so that a
// failure leaves nothing behind.
func (s *Service) putPolicy(c *change, actor Actor, p Policy, t policyTargets, affected []string) (Policy, error) {
	p.CreatedAt = c.now
	if t.hadOld {
		p.CreatedAt = t.old.CreatedAt
	}
	p.UpdatedAt = c.now
	p.ProvisioningState = ProvisioningSucceeded
	p.ProvisioningError = ""
	if p.Kind == "" {
		p.Kind = "Basic"
	}
	if err := c.tx.PutPolicy(c.ctx, p); err != nil {
		return Policy{}, err
	}
	for _, vmID := range affected {
		vp, inPolicy := p.VM(vmID)
		stillGuarded := func(g Grant) bool { _, ok := vp.Port(g.Port); return inPolicy && ok }
		if _, err := endActive(c, actor, vmID, ReasonPolicyRemoved, stillGuarded); err != nil {
			return Policy{}, err
		}
	}
	var before any
	if t.hadOld {
		before = t.old
	}
	if err := c.audit(actor, AuditPolicyPut, p.ID, "", before, p); err != nil {
		return Policy{}, err
	}
	return p, s.applyInStore(c, affected, func(vmID string) string { return policyVMField(p, vmID) })
}

// policyVMField names the field of p that lists vmID.
func policyVMField(p Policy, vmID string) string {
	for i, v := range p.VirtualMachines {
		if strings.EqualFold(v.ID, vmID) {
			return fmt.Sprintf("properties.virtualMachines[%d].id", i)
		}
	}
	return "properties.virtualMachines"
}

// GetPolicy returns a policy by ID.
func (s *Service) GetPolicy(ctx context.Context, id string) (Policy, error) {
	p, err := readTx(ctx, s.store, func(tx Tx) (Policy, error) { return tx.GetPolicy(ctx, id) })
	return p, orNotFound(err, "", "JIT network access policy %s not found", id)
}

// ListPolicies returns the policies inside scope ("/" for all), optionally in one location.
func (s *Service) ListPolicies(ctx context.Context, scope, location string) ([]Policy, error) {
	return readTx(ctx, s.store, func(tx Tx) ([]Policy, error) { return tx.ListPolicies(ctx, scope, location) })
}

// DeletePolicy disables JIT on every VM of the policy (restoring the rules
// JIT set aside), ends its active grants with PolicyRemoved and deletes it.
func (s *Service) DeletePolicy(ctx context.Context, id string) error {
	p, err := s.GetPolicy(ctx, id)
	if err != nil {
		return err
	}
	var vmIDs []string
	for _, v := range p.VirtualMachines {
		vmIDs = append(vmIDs, v.ID)
	}
	_, after, err := write(ctx, s, lowerAll(vmIDs), func(c *change) (struct{}, error) {
		return struct{}{}, s.deletePolicy(c, ActorFrom(ctx), p, vmIDs)
	})
	if err != nil {
		return err
	}
	return after.err()
}

func (s *Service) deletePolicy(c *change, actor Actor, p Policy, vmIDs []string) error {
	for _, vmID := range vmIDs {
		if _, err := endActive(c, actor, vmID, ReasonPolicyRemoved, nil); err != nil {
			return err
		}
	}
	if err := c.tx.DeletePolicy(c.ctx, p.ID); err != nil {
		return err
	}
	if err := c.audit(actor, AuditPolicyDelete, p.ID, "", p, nil); err != nil {
		return err
	}
	// Restoring the rules JIT set aside must succeed, or the policy
	// stays: a deleted policy is never reconciled again.
	return s.applyInStore(c, vmIDs, func(string) string { return "" })
}

// PolicyForVM returns the policy that guards a VM.
func (s *Service) PolicyForVM(ctx context.Context, vmID string) (Policy, error) {
	p, err := readTx(ctx, s.store, func(tx Tx) (Policy, error) { return tx.PolicyForVM(ctx, vmID) })
	return p, orNotFound(err, "vm", "virtual machine %s has no JIT policy", vmID)
}
