package jit

import (
	"context"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/inventory"
)

// ListVMs returns the inventory's VMs in ID order.
func (s *Service) ListVMs(ctx context.Context) ([]inventory.VM, error) {
	inv, err := s.Inventory(ctx)
	return inv.VMs, err
}

// GetVM returns one VM.
func (s *Service) GetVM(ctx context.Context, id string) (inventory.VM, error) {
	vm, err := readTx(ctx, s.store, func(tx Tx) (inventory.VM, error) { return inventory.GetVM(ctx, tx, id) })
	return vm, orNotFound(err, "", "virtual machine %s not found", id)
}

// ApplyInventory validates an inventory document and stores all of it in one
// transaction (nothing of an invalid document is stored), then reconciles
// the VMs JIT guards so their firewalls carry JIT's rules again.
func (s *Service) ApplyInventory(ctx context.Context, inv inventory.Inventory) error {
	if err := inventory.Validate(inv); err != nil {
		return &FieldError{Kind: ErrInvalid, Reason: err.Error()}
	}
	_, _, err := write(ctx, s, nil, func(c *change) (struct{}, error) {
		if err := inventory.Save(ctx, c.tx, inv); err != nil {
			return struct{}{}, err
		}
		return struct{}{}, c.audit(ActorFrom(ctx), AuditInventoryApply, "/",
			fmt.Sprintf("%d VMs, %d NSGs, %d security groups", len(inv.VMs), len(inv.NSGs), len(inv.SecurityGroups)), nil, nil)
	})
	if err != nil {
		return err
	}
	_, err = s.ReconcileAll(ctx)
	return err
}
