package jit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/store"
)

// The reconcile engine. A VM's desired state is computed from the store
// (desiredInTx) and handed to its provider. Providers that keep their state
// in the store (TxProvider) apply inside the writing transaction, so the
// change and the firewall commit together; the others apply after commit,
// under the VM's lock, and what they report is recorded afterwards.

// vmState is a VM, its desired state and its active grants, read in one
// transaction.
type vmState struct {
	vm      inventory.VM
	desired Desired
	active  []Grant
}

// DesiredFor computes the desired firewall state of a VM from the store: the
// ports its policy guards and its grants that are active now.
func (s *Service) DesiredFor(ctx context.Context, vmID string) (inventory.VM, Desired, []Grant, error) {
	st, err := readTx(ctx, s.store, func(tx Tx) (vmState, error) { return desiredInTx(ctx, tx, vmID, s.clock.Now().UTC()) })
	return st.vm, st.desired, st.active, err
}

func desiredInTx(ctx context.Context, tx Tx, vmID string, now time.Time) (vmState, error) {
	vm, err := inventory.GetVM(ctx, tx, vmID)
	if err != nil {
		return vmState{vm: vm}, err
	}
	d := Desired{VMID: vm.ID}
	p, err := tx.PolicyForVM(ctx, vm.ID)
	switch {
	case err == nil:
		if vp, ok := p.VM(vm.ID); ok {
			d.Guarded = guardedPorts(vp)
		}
	case !errors.Is(err, store.ErrNotFound):
		return vmState{vm: vm, desired: d}, err
	}
	grants, err := tx.ListGrants(ctx, GrantFilter{VMID: vm.ID, ActiveOnly: true})
	if err != nil {
		return vmState{vm: vm, desired: d}, err
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
	return vmState{vm: vm, desired: d, active: active}, nil
}

// applyInStore reconciles vmIDs in c: those whose provider keeps its state
// in the store apply now, the others are left to reconcile after commit.
// With fieldFor set, a provider failure aborts the transaction as a
// conflict naming fieldFor(vmID); without it, the failure is recorded on
// the VM's grants and the transaction goes on.
func (s *Service) applyInStore(c *change, vmIDs []string, fieldFor func(vmID string) string) error {
	for _, vmID := range vmIDs {
		outside, err := s.applyVMInStore(c, vmID, fieldFor)
		if err != nil {
			return err
		}
		if outside != nil {
			c.later = append(c.later, vmID)
		}
	}
	return nil
}

// applyVMInStore is applyInStore for one VM. If the VM's provider lives
// outside the store (or is missing: ReconcileVM reports that), it returns
// the state read here, which that provider must apply; else nil.
func (s *Service) applyVMInStore(c *change, vmID string, fieldFor func(vmID string) string) (outside *vmState, err error) {
	st, err := desiredInTx(c.ctx, c.tx, vmID, c.now)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil // left the inventory: nothing to enforce
	} else if err != nil {
		return nil, err
	}
	prov, err := s.providerFor(st.vm)
	if err != nil {
		if fieldFor != nil {
			return nil, conflict(fieldFor(vmID), "%v", err)
		}
		return &st, nil
	}
	txp, ok := prov.(TxProvider)
	if !ok {
		return &st, nil
	}
	obs, applyErr := txp.ApplyTx(c.ctx, c.tx, st.vm, st.desired)
	if applyErr != nil {
		if fieldFor != nil {
			return nil, conflict(fieldFor(vmID), "cannot apply JIT on %s: %v", st.vm.ID, applyErr)
		}
		applyErr = fmt.Errorf("apply on %s: %w", st.vm.ID, applyErr)
	}
	if len(obs.Drift) > 0 {
		if err := c.providerDriftOn(st.vm.ID, obs.Drift, applyErr); err != nil {
			return nil, err
		}
	}
	for _, g := range observedChanges(st.active, obs, applyErr, c.now) {
		if err := c.tx.UpdateGrant(c.ctx, g); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// observedChanges returns the active grants whose apply bookkeeping changes
// given what the provider observed (or the error it failed with).
func observedChanges(active []Grant, obs Observed, applyErr error, now time.Time) []Grant {
	var changed []Grant
	for _, g := range active {
		ng := g
		switch {
		case applyErr != nil:
			ng.ProviderError = applyErr.Error()
		case slices.Contains(obs.Enforced, g.ID):
			ng.ProviderError, ng.ConnectTo = "", obs.ConnectTo[g.ID]
			if !ng.Applied {
				ng.Applied, ng.AppliedAt = true, now
			}
		default:
			ng.ProviderError = ""
		}
		if ng.Applied != g.Applied || ng.ProviderError != g.ProviderError || ng.ConnectTo != g.ConnectTo {
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
	r, _, err := write(ctx, s, nil, func(c *change) (reconcileResult, error) { return s.reconcileInStore(c, vmID) })
	if err != nil {
		return err
	}
	if r.outside == nil {
		return r.applyErr
	}
	return s.reconcileOutside(ctx, *r.outside)
}

// reconcileResult is what reconcileInStore found: the failure recorded in
// the store, or the state an outside provider must apply.
type reconcileResult struct {
	applyErr error
	outside  *vmState
}

// reconcileInStore applies a VM whose provider lives in the store and
// reports the failure it recorded; for a provider outside the store it
// returns what that provider needs, as read in this transaction (one store
// round trip less on the path from a request to an open port).
func (s *Service) reconcileInStore(c *change, vmID string) (reconcileResult, error) {
	outside, err := s.applyVMInStore(c, vmID, nil)
	if err != nil || outside != nil {
		return reconcileResult{outside: outside}, err
	}
	grants, err := c.tx.ListGrants(c.ctx, GrantFilter{VMID: vmID, ActiveOnly: true})
	if err != nil {
		return reconcileResult{}, err
	}
	for _, g := range grants {
		if g.ProviderError != "" {
			return reconcileResult{applyErr: errors.New(g.ProviderError)}, nil
		}
	}
	return reconcileResult{}, nil
}

// reconcileOutside reconciles a VM whose provider lives outside the store:
// apply the desired state read under the VM's lock, then record what the
// provider reported.
func (s *Service) reconcileOutside(ctx context.Context, st vmState) error {
	prov, err := s.providerFor(st.vm)
	if err != nil {
		return err
	}
	obs, applyErr := prov.Apply(ctx, st.vm, st.desired)
	if s.OnChange != nil {
		s.OnChange(st.vm.ID)
	}
	if applyErr != nil {
		applyErr = fmt.Errorf("apply on %s: %w", st.vm.ID, applyErr)
	}
	driftErr := s.recordProviderDrift(ctx, st.vm.ID, obs.Drift, applyErr)
	if err := s.updateGrants(ctx, observedChanges(st.active, obs, applyErr, s.clock.Now().UTC())); err != nil {
		return errors.Join(applyErr, driftErr, err)
	}
	return errors.Join(applyErr, driftErr)
}

// ReportObserved records what an asynchronous provider (an agent) says its
// firewall enforces for a VM: those grants become applied. It reads the
// VM's active grants and writes the changed ones in one writing
// transaction, where the store has them at hand, rather than reading them
// again in a read transaction per report.
func (s *Service) ReportObserved(ctx context.Context, vmID string, enforced []string, providerErr string) error {
	_, _, err := write(ctx, s, nil, func(c *change) (struct{}, error) {
		vm, err := inventory.GetVM(c.ctx, c.tx, vmID)
		if err != nil {
			return struct{}{}, err
		}
		grants, err := c.tx.ListGrants(c.ctx, GrantFilter{VMID: vm.ID, ActiveOnly: true})
		if err != nil {
			return struct{}{}, err
		}
		for _, g := range grants {
			if !g.IsActive(c.now) {
				continue
			}
			ng := g
			ng.Applied, ng.ProviderError = slices.Contains(enforced, g.ID), providerErr
			if ng.Applied == g.Applied && ng.ProviderError == g.ProviderError {
				continue
			}
			if ng.Applied && !g.Applied {
				ng.AppliedAt = c.now
			}
			if err := c.tx.UpdateGrant(c.ctx, ng); err != nil {
				return struct{}{}, err
			}
		}
		return struct{}{}, nil
	})
	return err
}

// updateGrants records the apply bookkeeping of gs; a concurrent end of a
// grant wins.
func (s *Service) updateGrants(ctx context.Context, gs []Grant) error {
	if len(gs) == 0 {
		return nil
	}
	_, _, err := write(ctx, s, nil, func(c *change) (struct{}, error) {
		for _, g := range gs {
			cur, err := c.tx.GetGrant(c.ctx, g.ID)
			if err != nil {
				return struct{}{}, err
			}
			if cur.Status != g.Status {
				continue
			}
			cur.Applied, cur.AppliedAt, cur.ProviderError = g.Applied, g.AppliedAt, g.ProviderError
			cur.ConnectTo = g.ConnectTo
			if err := c.tx.UpdateGrant(c.ctx, cur); err != nil {
				return struct{}{}, err
			}
		}
		return struct{}{}, nil
	})
	return err
}

// ReconcileAll reconciles every VM that has a policy or an active grant, or
// that a Holder provider may still hold objects on, and returns the VMs
// that failed. A Holder that cannot answer is reported as a failure under
// the VM ID "" and the other VMs are still reconciled.
func (s *Service) ReconcileAll(ctx context.Context) (map[string]error, error) {
	vms, err := readTx(ctx, s.store, func(tx Tx) (map[string]string, error) {
		vms := map[string]string{}
		ps, err := tx.ListPolicies(ctx, "/", "")
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			for _, v := range p.VirtualMachines {
				vms[inventory.Key(v.ID)] = v.ID
			}
		}
		gs, err := tx.ListGrants(ctx, GrantFilter{ActiveOnly: true})
		if err != nil {
			return nil, err
		}
		for _, g := range gs {
			vms[inventory.Key(g.VMID)] = g.VMID
		}
		return vms, nil
	})
	if err != nil {
		return nil, err
	}
	failed := map[string]error{}
	if err := s.holdingVMs(ctx, vms); err != nil {
		failed[""] = err
	}
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
