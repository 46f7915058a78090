package jit

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/store"
)

// DesiredFor computes the desired firewall state of a VM from the store: the
// ports its policy guards and its grants that are active now.
func (s *Service) DesiredFor(ctx context.Context, vmID string) (inventory.VM, Desired, []Grant, error) {
	var vm inventory.VM
	var d Desired
	var active []Grant
	err := s.store.ReadTx(ctx, func(tx Tx) error {
		var err error
		vm, d, active, err = desiredInTx(ctx, tx, vmID, s.clock.Now().UTC())
		return err
	})
	return vm, d, active, err
}

func desiredInTx(ctx context.Context, tx Tx, vmID string, now time.Time) (inventory.VM, Desired, []Grant, error) {
	vm, err := tx.GetVM(ctx, vmID)
	if err != nil {
		return vm, Desired{}, nil, err
	}
	d := Desired{VMID: vm.ID}
	p, err := tx.PolicyForVM(ctx, vm.ID)
	switch {
	case err == nil:
		if vp, ok := p.VM(vm.ID); ok {
			d.Guarded = guardedPorts(vp)
		}
	case !errors.Is(err, store.ErrNotFound):
		return vm, d, nil, err
	}
	grants, err := tx.ListGrants(ctx, GrantFilter{VMID: vm.ID, ActiveOnly: true})
	if err != nil {
		return vm, d, nil, err
	}
	var active []Grant
	for _, g := range grants {
		if g.IsActive(now) {
			active = append(active, g)
		}
	}
	// Oldest first so providers see a stable order.
	sort.Slice(active, func(i, j int) bool { return active[i].ID < active[j].ID })
	for _, g := range active {
		d.Grants = append(d.Grants, desiredGrant(g))
	}
	return vm, d, active, nil
}

// applyAllInTx reconciles the VMs whose provider keeps its state in the
// store, inside tx, and returns the others for the caller to reconcile
// after commit. With fieldFor set, a provider failure aborts the
// transaction as a conflict naming fieldFor(vmID); without it, the failure
// is recorded on the VM's grants and the transaction goes on.
func (s *Service) applyAllInTx(ctx context.Context, tx Tx, vmIDs []string, now time.Time, fieldFor func(vmID string) string) ([]string, error) {
	var later []string
	for _, vmID := range vmIDs {
		vm, desired, active, err := desiredInTx(ctx, tx, vmID, now)
		if errors.Is(err, store.ErrNotFound) {
			continue // left the inventory: nothing to enforce
		} else if err != nil {
			return nil, err
		}
		prov, err := s.providerFor(vm)
		if err != nil {
			if fieldFor != nil {
				return nil, conflict(fieldFor(vmID), "%v", err)
			}
			later = append(later, vm.ID) // ReconcileVM reports it
			continue
		}
		txp, ok := prov.(TxProvider)
		if !ok {
			later = append(later, vm.ID)
			continue
		}
		obs, applyErr := txp.ApplyTx(ctx, tx, vm, desired)
		if applyErr != nil {
			if fieldFor != nil {
				return nil, conflict(fieldFor(vmID), "cannot apply JIT on %s: %v", vm.ID, applyErr)
			}
			applyErr = fmt.Errorf("apply on %s: %w", vm.ID, applyErr)
		}
		if err := recordObserved(ctx, tx, active, obs, applyErr, now); err != nil {
			return nil, err
		}
	}
	return later, nil
}

// recordObserved updates the apply bookkeeping of a VM's active grants in tx.
func recordObserved(ctx context.Context, tx Tx, active []Grant, obs Observed, applyErr error, now time.Time) error {
	for _, g := range observedChanges(active, obs, applyErr, now) {
		if err := tx.UpdateGrant(ctx, g); err != nil {
			return err
		}
	}
	return nil
}

// observedChanges returns the active grants whose apply bookkeeping changes
// given what the provider observed (or the error it failed with).
func observedChanges(active []Grant, obs Observed, applyErr error, now time.Time) []Grant {
	enforced := map[string]bool{}
	for _, id := range obs.Enforced {
		enforced[id] = true
	}
	var changed []Grant
	for _, g := range active {
		ng := g
		switch {
		case applyErr != nil:
			ng.ProviderError = applyErr.Error()
		case enforced[g.ID]:
			ng.ProviderError = ""
			if !ng.Applied {
				ng.Applied, ng.AppliedAt = true, now
			}
		default:
			ng.ProviderError = ""
		}
		if ng.Applied != g.Applied || ng.ProviderError != g.ProviderError {
			changed = append(changed, ng)
		}
	}
	return changed
}

// ReconcileVM makes the VM's firewall match the store. It is safe to call at
// any time, any number of times. Grants the provider confirms are marked
// applied; a provider failure is recorded on the VM's active grants.
func (s *Service) ReconcileVM(ctx context.Context, vmID string) error {
	unlock := s.lockVMs([]string{inventory.Key(vmID)})
	defer unlock()
	var later []string
	var applyErr error
	var outside *outsideState
	err := s.store.InTx(ctx, func(tx Tx) error {
		now := s.clock.Now().UTC()
		var err error
		outside, applyErr = nil, nil // fn may run more than once
		later, err = s.applyAllInTx(ctx, tx, []string{vmID}, now, nil)
		if err != nil {
			return err
		}
		if len(later) > 0 {
			// Read what the outside provider needs in this transaction,
			// not in another one after it: one store round trip less on
			// the path from a request to an open port.
			vm, desired, active, err := desiredInTx(ctx, tx, vmID, now)
			if err == nil {
				outside = &outsideState{vm, desired, active}
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if len(later) == 0 {
			// Report a failure recorded in the transaction to the caller.
			grants, err := tx.ListGrants(ctx, GrantFilter{VMID: vmID, ActiveOnly: true})
			if err != nil {
				return err
			}
			for _, g := range grants {
				if g.ProviderError != "" {
					applyErr = errors.New(g.ProviderError)
					break
				}
			}
		}
		return nil
	})
	if err != nil || len(later) == 0 || outside == nil {
		return errors.Join(err, applyErr)
	}
	return s.reconcileOutside(ctx, *outside)
}

// outsideState is what reconcileOutside applies: a VM, its desired state
// and its active grants, read in one transaction under the VM's lock.
type outsideState struct {
	vm      inventory.VM
	desired Desired
	active  []Grant
}

// reconcileOutside reconciles a VM whose provider lives outside the store:
// apply the desired state read under the VM's lock, then record what the
// provider reported.
func (s *Service) reconcileOutside(ctx context.Context, o outsideState) error {
	vm, desired, active := o.vm, o.desired, o.active
	prov, err := s.providerFor(vm)
	if err != nil {
		return err
	}
	obs, applyErr := prov.Apply(ctx, vm, desired)
	if s.OnChange != nil {
		s.OnChange(vm.ID)
	}
	if applyErr != nil {
		applyErr = fmt.Errorf("apply on %s: %w", vm.ID, applyErr)
	}
	changed := observedChanges(active, obs, applyErr, s.clock.Now().UTC())
	if len(changed) > 0 {
		if err := s.updateGrants(ctx, changed); err != nil {
			return errors.Join(applyErr, err)
		}
	}
	return applyErr
}

// ReportObserved records what an asynchronous provider (an agent) says its
// firewall enforces for a VM: those grants become applied.
func (s *Service) ReportObserved(ctx context.Context, vmID string, enforced []string, providerErr string) error {
	_, _, active, err := s.DesiredFor(ctx, vmID)
	if err != nil {
		return err
	}
	now := s.clock.Now().UTC()
	in := map[string]bool{}
	for _, id := range enforced {
		in[id] = true
	}
	var changed []Grant
	for _, g := range active {
		ng := g
		ng.Applied = in[g.ID]
		if ng.Applied && !g.Applied {
			ng.AppliedAt = now
		}
		ng.ProviderError = providerErr
		if ng.Applied != g.Applied || ng.ProviderError != g.ProviderError {
			changed = append(changed, ng)
		}
	}
	return s.updateGrants(ctx, changed)
}

func (s *Service) updateGrants(ctx context.Context, gs []Grant) error {
	if len(gs) == 0 {
		return nil
	}
	return s.store.InTx(ctx, func(tx Tx) error {
		for _, g := range gs {
			cur, err := tx.GetGrant(ctx, g.ID)
			if err != nil {
				return err
			}
			// Only the apply bookkeeping changes here; a concurrent end of
			// the grant wins.
			if cur.Status != g.Status {
				continue
			}
			cur.Applied, cur.AppliedAt, cur.ProviderError = g.Applied, g.AppliedAt, g.ProviderError
			if err := tx.UpdateGrant(ctx, cur); err != nil {
				return err
			}
		}
		return nil
	})
}

// ReconcileAll reconciles every VM that has a policy or an active grant, and
// returns the VMs that failed.
func (s *Service) ReconcileAll(ctx context.Context) (map[string]error, error) {
	vms := map[string]string{}
	err := s.store.ReadTx(ctx, func(tx Tx) error {
		clear(vms) // fn may run more than once
		ps, err := tx.ListPolicies(ctx, "/", "")
		if err != nil {
			return err
		}
		for _, p := range ps {
			for _, v := range p.VirtualMachines {
				vms[inventory.Key(v.ID)] = v.ID
			}
		}
		gs, err := tx.ListGrants(ctx, GrantFilter{ActiveOnly: true})
		if err != nil {
			return err
		}
		for _, g := range gs {
			vms[inventory.Key(g.VMID)] = g.VMID
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	failed := map[string]error{}
	for _, vmID := range sortedValues(vms) {
		if err := s.ReconcileVM(ctx, vmID); err != nil {
			failed[vmID] = err
		}
	}
	return failed, nil
}

func (s *Service) providerFor(vm inventory.VM) (Provider, error) {
	p, ok := s.providers.For(vm.Provider)
	if !ok {
		return nil, fmt.Errorf("virtual machine %s uses provider %q, which this server does not run", vm.ID, vm.Provider)
	}
	return p, nil
}

func guardedPorts(vp VMPolicy) []GuardedPort {
	out := make([]GuardedPort, 0, len(vp.Ports))
	for _, p := range vp.Ports {
		out = append(out, GuardedPort{Port: p.Number, Protocol: p.Protocol})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Port < out[j].Port })
	return out
}

func desiredGrant(g Grant) DesiredGrant {
	return DesiredGrant{GrantID: g.ID, Port: g.Port, Protocol: netrule.Protocol(g.Protocol), Source: g.Source, End: g.EndTime}
}
