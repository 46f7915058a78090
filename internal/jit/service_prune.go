package jit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
)

// AuditInventoryRemove is the audit operation of a VM leaving the
// inventory because discovery no longer finds it (deleted in the cloud).
const AuditInventoryRemove = "inventory.remove"

// SyncScope says which stored VMs a discovery covers: those of Provider
// whose ID starts with Prefix (a resource ID such as /subscriptions/SUB or
// /subscriptions/SUB/resourceGroups/RG). A VM it covers that the
// discovered inventory lacks was deleted in the cloud.
type SyncScope struct {
	Provider string
	Prefix   string
}

func (sc SyncScope) covers(vm inventory.VM) bool {
	if vm.Provider != sc.Provider || sc.Prefix == "" {
		return false
	}
	p := strings.TrimSuffix(inventory.Key(sc.Prefix), "/")
	k := inventory.Key(vm.ID)
	return strings.HasPrefix(k, p+"/")
}

// SyncInventory applies a discovered inventory like ApplyInventory and, in
// the same transaction, removes the VMs sc covers that inv does not list:
// their active grants end (PolicyRemoved), they leave their policy (a
// policy left with no VM is deleted) and each removal is audited
// (inventory.remove, with the VM as it was). It returns the removed VM IDs.
func (s *Service) SyncInventory(ctx context.Context, inv inventory.Inventory, sc SyncScope) ([]string, error) {
	if err := inventory.Validate(inv); err != nil {
		return nil, &FieldError{Kind: ErrInvalid, Reason: err.Error()}
	}
	if sc.Provider == "" || sc.Prefix == "" {
		return nil, invalid("scope", "a sync names the provider and the resource ID prefix it covers")
	}
	keep := map[string]bool{}
	for _, vm := range inv.VMs {
		keep[inventory.Key(vm.ID)] = true
	}
	gone := func(tx Tx) ([]inventory.VM, error) {
		vms, err := inventory.LoadVMs(ctx, tx)
		var out []inventory.VM
		for _, vm := range vms {
			if sc.covers(vm) && !keep[inventory.Key(vm.ID)] {
				out = append(out, vm)
			}
		}
		return out, err
	}
	candidates, err := readTx(ctx, s.store, gone)
	if err != nil {
		return nil, err
	}
	if err := emptyListing(inv, sc, len(candidates)); err != nil {
		return nil, err
	}
	var lock []string
	for _, vm := range candidates {
		lock = append(lock, inventory.Key(vm.ID))
	}
	removed, _, err := write(ctx, s, lock, func(c *change) ([]inventory.VM, error) {
		actor := ActorFrom(ctx)
		if err := inventory.Save(ctx, c.tx, inv); err != nil {
			return nil, err
		}
		vms, err := gone(c.tx)
		if err != nil {
			return nil, err
		}
		for _, vm := range vms {
			if err := s.removeVM(c, actor, vm); err != nil {
				return nil, err
			}
		}
		detail := fmt.Sprintf("%d VMs, %d NSGs, %d security groups; %d VMs removed (%s under %s)", len(inv.VMs), len(inv.NSGs), len(inv.SecurityGroups), len(vms), sc.Provider, sc.Prefix)
		return vms, c.audit(actor, AuditInventoryApply, "/", detail, nil, nil)
	})
	if err != nil {
		return nil, err
	}
	var ids []string
	var errs []error
	for _, vm := range removed {
		ids = append(ids, vm.ID)
		errs = append(errs, s.disableRemoved(ctx, vm))
	}
	_, err = s.ReconcileAll(ctx)
	return ids, errors.Join(append(errs, err)...)
}

// disableRemoved removes what a provider outside the store still holds
// for a VM that left the inventory (its NICs and their NSGs may outlive it
// in the cloud). The store no longer knows the VM, so its provider is
// applied directly with JIT disabled; a failure is reported, and rules
// left on an NSG that is gone are gone with it.
func (s *Service) disableRemoved(ctx context.Context, vm inventory.VM) error {
	prov, err := s.providerFor(vm)
	if err != nil {
		return nil // no provider here: nothing this server placed
	}
	if _, inTx := prov.(TxProvider); inTx {
		return nil // disabled inside the removing transaction
	}
	unlock := s.lockVMs([]string{inventory.Key(vm.ID)})
	defer unlock()
	if _, err := prov.Apply(ctx, vm, Desired{VMID: vm.ID}); err != nil {
		return fmt.Errorf("remove JIT's rules of deleted VM %s: %w", vm.ID, err)
	}
	if s.OnChange != nil {
		s.OnChange(vm.ID)
	}
	return nil
}

// removeVM takes a VM deleted in the cloud out of the store: its grants
// end, it leaves its policy, a provider in the store disables JIT on it,
// its inventory object goes.
func (s *Service) removeVM(c *change, actor Actor, vm inventory.VM) error {
	ended, err := endActive(c, actor, vm.ID, ReasonPolicyRemoved, nil)
	if err != nil {
		return err
	}
	detail := "deleted in the cloud: left the inventory"
	if ended > 0 {
		detail += fmt.Sprintf("; %d grants ended", ended)
	}
	if p, err := c.tx.PolicyForVM(c.ctx, vm.ID); err == nil {
		if err := dropFromPolicy(c, actor, p, vm.ID); err != nil {
			return err
		}
		detail += "; removed from policy " + p.ID
	}
	if _, err := s.applyVMInStore(c, vm.ID, nil); err != nil {
		return err
	}
	if err := c.tx.DeleteObject(c.ctx, inventory.KindVM, inventory.Key(vm.ID)); err != nil {
		return err
	}
	return c.audit(actor, AuditInventoryRemove, vm.ID, detail, vm, nil)
}

// dropFromPolicy removes vmID from p, deleting p if no VM is left.
func dropFromPolicy(c *change, actor Actor, p Policy, vmID string) error {
	after := p
	after.VirtualMachines = slices.DeleteFunc(slices.Clone(p.VirtualMachines), func(v VMPolicy) bool { return strings.EqualFold(v.ID, vmID) })
	if len(after.VirtualMachines) == 0 {
		if err := c.tx.DeletePolicy(c.ctx, p.ID); err != nil {
			return err
		}
		return c.audit(actor, AuditPolicyDelete, p.ID, "its last virtual machine "+vmID+" was deleted in the cloud", p, nil)
	}
	if err := c.tx.PutPolicy(c.ctx, after); err != nil {
		return err
	}
	return c.audit(actor, AuditPolicyPut, p.ID, "virtual machine "+vmID+" was deleted in the cloud", p, after)
}

// emptyListing refuses a sync whose listing holds no VM of the scope while
// the inventory holds some: a cloud API that lists nothing is far more
// often a credential that sees nothing than an estate deleted whole, and
// pruning on it would end every grant and policy under the scope. Really
// deleted VMs leave with an `inventory apply` that omits them.
func emptyListing(inv inventory.Inventory, sc SyncScope, removing int) error {
	if removing == 0 || slices.ContainsFunc(inv.VMs, sc.covers) {
		return nil
	}
	return conflict("scope", "the discovered inventory has no %s VM under %s, so syncing it would remove all %d stored there; refused (check the credentials can list them, or remove VMs that are really gone with inventory apply)", sc.Provider, sc.Prefix, removing)
}
