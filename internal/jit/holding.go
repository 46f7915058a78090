package jit

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Holder is a Provider outside the store that can say which VMs it may
// still hold objects on (rules, security groups, revocations). The resync
// reconciles those VMs too: a VM whose policy was deleted while its Apply
// failed, or while the server was down, is guarded by nothing the store
// knows, and only this keeps a grant's allow rule from staying open.
type Holder interface {
	// Holding returns the VMs (IDs or inventory keys) the provider may hold
	// objects on. vms are the inventory's VMs that use this provider, for a
	// provider that names its objects after a VM in a way it cannot reverse
	// (Azure's rule names carry a hash of the VM ID). Returning a VM that
	// holds nothing is harmless: its reconcile changes nothing.
	Holding(ctx context.Context, vms []inventory.VM) ([]string, error)
}

// ProviderLister is Providers that can list its provider names, so the
// resync can ask each Holder what it holds.
type ProviderLister interface {
	Names() []string
}

// Names returns the map's provider names, sorted.
func (m ProviderMap) Names() []string { return slices.Sorted(maps.Keys(m)) }

// Unwrapper is a Provider wrapping another (metrics, tracing); optional
// interfaces such as Holder are looked up through it.
type Unwrapper interface {
	Unwrap() Provider
}

func asHolder(p Provider) (Holder, bool) {
	for p != nil {
		if h, ok := p.(Holder); ok {
			return h, true
		}
		u, ok := p.(Unwrapper)
		if !ok {
			return nil, false
		}
		p = u.Unwrap()
	}
	return nil, false
}

// holdingVMs asks every Holder provider which VMs it may hold objects on
// and adds them to vms (key -> ID). A provider that cannot answer is
// reported in the error and the others still count.
func (s *Service) holdingVMs(ctx context.Context, vms map[string]string) error {
	pl, ok := s.providers.(ProviderLister)
	if !ok {
		return nil
	}
	var all []inventory.VM
	loaded := false
	var errs []error
	for _, name := range pl.Names() {
		p, _ := s.providers.For(name)
		h, ok := asHolder(p)
		if !ok {
			continue
		}
		if !loaded {
			var err error
			all, err = readTx(ctx, s.store, func(tx Tx) ([]inventory.VM, error) { return inventory.LoadVMs(ctx, tx) })
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			loaded = true
		}
		mine := slices.DeleteFunc(slices.Clone(all), func(vm inventory.VM) bool { return vm.Provider != name })
		held, err := h.Holding(ctx, mine)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, id := range held {
			if _, dup := vms[inventory.Key(id)]; !dup {
				vms[inventory.Key(id)] = id
			}
		}
	}
	return errors.Join(errs...)
}
