package jit

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/resource"
	"github.com/drawbridge/drawbridge/internal/store"
)

// PutPolicy creates or replaces a policy and enables JIT on its VMs' ports.
// VMs or ports dropped from the policy have JIT disabled and their grants end
// with PolicyRemoved. If a provider cannot protect a VM, nothing is stored.
func (s *Service) PutPolicy(ctx context.Context, p Policy) (Policy, error) {
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
	now := s.clock.Now().UTC()
	actor := ActorFrom(ctx)

	var old Policy
	var hadOld bool
	vms := map[string]inventory.VM{}
	err = s.store.InTx(ctx, func(tx Tx) error {
		old, hadOld = Policy{}, false // fn may run more than once
		clear(vms)
		o, err := tx.GetPolicy(ctx, p.ID)
		switch {
		case err == nil:
			old, hadOld = o, true
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		for i, v := range p.VirtualMachines {
			vm, err := tx.GetVM(ctx, v.ID)
			if errors.Is(err, store.ErrNotFound) {
				return notFound(fmt.Sprintf("properties.virtualMachines[%d].id", i), "virtual machine %s is not in the inventory", v.ID)
			} else if err != nil {
				return err
			}
			other, err := tx.PolicyForVM(ctx, v.ID)
			if err == nil && !strings.EqualFold(other.ID, p.ID) {
				return conflict(fmt.Sprintf("properties.virtualMachines[%d].id", i), "virtual machine %s is already guarded by policy %s", v.ID, other.ID)
			} else if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			vms[inventory.Key(v.ID)] = vm
		}
		return nil
	})
	if err != nil {
		return Policy{}, err
	}

	// Ask each provider first: a VM it cannot protect fails the whole call.
	for i, v := range p.VirtualMachines {
		vm := vms[inventory.Key(v.ID)]
		prov, err := s.providerFor(vm)
		if err != nil {
			return Policy{}, conflict(fmt.Sprintf("properties.virtualMachines[%d].id", i), "%v", err)
		}
		if _, inTx := prov.(TxProvider); inTx {
			continue // checked by applying inside the writing transaction
		}
		d := Desired{VMID: vm.ID, Guarded: guardedPorts(v)}
		if err := prov.Check(ctx, vm, d); err != nil {
			return Policy{}, conflict(fmt.Sprintf("properties.virtualMachines[%d].id", i), "cannot enable JIT on %s: %v", v.ID, err)
		}
	}

	if hadOld {
		p.CreatedAt = old.CreatedAt
	} else {
		p.CreatedAt = now
	}
	p.UpdatedAt = now
	p.ProvisioningState = ProvisioningSucceeded
	p.ProvisioningError = ""
	if p.Kind == "" {
		p.Kind = "Basic"
	}

	affected := map[string]string{} // key -> VM ID
	for _, v := range p.VirtualMachines {
		affected[inventory.Key(v.ID)] = v.ID
	}
	for _, v := range old.VirtualMachines {
		affected[inventory.Key(v.ID)] = v.ID
	}
	unlock := s.lockVMs(keys(affected))
	var later []string
	err = s.store.InTx(ctx, func(tx Tx) error {
		if err := tx.PutPolicy(ctx, p); err != nil {
			return err
		}
		// End grants on ports that are no longer guarded.
		for _, vmID := range affected {
			grants, err := tx.ListGrants(ctx, GrantFilter{VMID: vmID, ActiveOnly: true})
			if err != nil {
				return err
			}
			vp, inPolicy := p.VM(vmID)
			for _, g := range grants {
				if inPolicy {
					if _, ok := vp.Port(g.Port); ok {
						continue
					}
				}
				if _, err := s.endGrant(ctx, tx, actor, g, ReasonPolicyRemoved, now); err != nil {
					return err
				}
			}
		}
		var before any
		if hadOld {
			before = old
		}
		if err := s.auditTx(ctx, tx, actor, AuditPolicyPut, p.ID, "", before, p, now); err != nil {
			return err
		}
		// Providers that keep their state in the store change with the
		// policy, in this transaction: a failure leaves nothing behind.
		var err error
		later, err = s.applyAllInTx(ctx, tx, sortedValues(affected), now, func(vmID string) string {
			for i, v := range p.VirtualMachines {
				if strings.EqualFold(v.ID, vmID) {
					return fmt.Sprintf("properties.virtualMachines[%d].id", i)
				}
			}
			return "properties.virtualMachines"
		})
		return err
	})
	unlock()
	if err != nil {
		return Policy{}, err
	}
	var failures []string
	for _, vmID := range later {
		if err := s.ReconcileVM(ctx, vmID); err != nil {
			failures = append(failures, err.Error())
		}
	}
	if len(failures) > 0 {
		p.ProvisioningState = ProvisioningFailed
		p.ProvisioningError = strings.Join(failures, "; ")
		_ = s.store.InTx(ctx, func(tx Tx) error { return tx.PutPolicy(ctx, p) })
	}
	return p, nil
}

// GetPolicy returns a policy by ID.
func (s *Service) GetPolicy(ctx context.Context, id string) (Policy, error) {
	p, err := readTx(ctx, s.store, func(tx Tx) (Policy, error) { return tx.GetPolicy(ctx, id) })
	if errors.Is(err, store.ErrNotFound) {
		return Policy{}, notFound("", "JIT network access policy %s not found", id)
	}
	return p, err
}

// ListPolicies returns the policies inside scope ("/" for all), optionally in one location.
func (s *Service) ListPolicies(ctx context.Context, scope, location string) ([]Policy, error) {
	return readTx(ctx, s.store, func(tx Tx) ([]Policy, error) { return tx.ListPolicies(ctx, scope, location) })
}

// DeletePolicy disables JIT on every VM of the policy (restoring the rules
// JIT set aside), ends its active grants with PolicyRemoved and deletes it.
func (s *Service) DeletePolicy(ctx context.Context, id string) error {
	now := s.clock.Now().UTC()
	actor := ActorFrom(ctx)
	p, err := s.GetPolicy(ctx, id)
	if err != nil {
		return err
	}
	var vmIDs []string
	for _, v := range p.VirtualMachines {
		vmIDs = append(vmIDs, v.ID)
	}
	unlock := s.lockVMs(lowerAll(vmIDs))
	var later []string
	err = s.store.InTx(ctx, func(tx Tx) error {
		for _, vmID := range vmIDs {
			grants, err := tx.ListGrants(ctx, GrantFilter{VMID: vmID, ActiveOnly: true})
			if err != nil {
				return err
			}
			for _, g := range grants {
				if _, err := s.endGrant(ctx, tx, actor, g, ReasonPolicyRemoved, now); err != nil {
					return err
				}
			}
		}
		if err := tx.DeletePolicy(ctx, p.ID); err != nil {
			return err
		}
		if err := s.auditTx(ctx, tx, actor, AuditPolicyDelete, p.ID, "", p, nil, now); err != nil {
			return err
		}
		// Restoring the rules JIT set aside must succeed, or the policy
		// stays: a deleted policy is never reconciled again.
		var err error
		later, err = s.applyAllInTx(ctx, tx, vmIDs, now, func(string) string { return "" })
		return err
	})
	unlock()
	if err != nil {
		return err
	}
	var errs []error
	for _, vmID := range later {
		if err := s.ReconcileVM(ctx, vmID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// PolicyForVM returns the policy that guards a VM.
func (s *Service) PolicyForVM(ctx context.Context, vmID string) (Policy, error) {
	p, err := readTx(ctx, s.store, func(tx Tx) (Policy, error) { return tx.PolicyForVM(ctx, vmID) })
	if errors.Is(err, store.ErrNotFound) {
		return p, notFound("vm", "virtual machine %s has no JIT policy", vmID)
	}
	return p, err
}
