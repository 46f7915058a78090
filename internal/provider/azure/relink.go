package azure

import (
	"context"
	"sort"
	"sync"

	"github.com/drawbridge/drawbridge/internal/inventory"
)

// DNAT rules left behind by a relink. A VM's DNAT rules live on the
// firewall its inventory names; when a re-sync moves the VM behind another
// firewall, or out from behind any, the rules on the old one are no longer
// on its path, and an Apply that reads only the VM's current firewall
// would leave them forwarding to it. The simulated provider finds them
// through its footprint in the store; here the provider keeps, in memory,
// the firewalls that may hold each VM's DNAT rules:
//   - every successful Apply records the VM's firewall if it left rules
//     there (and nothing else: the others were cleaned by that Apply);
//   - Holding, which lists every firewall of the subscriptions at each
//     resync (after a restart too), records each firewall it finds one of
//     the VM's rules on.
// An Apply then reads those firewalls besides the VM's own and lets the
// placement remove the VM's rules from them (sim's reconcileFirewalls
// treats every firewall it is given but the VM's as one to leave).

// dnatHomes maps a VM key to the firewalls (key → ID) that may hold its
// DNAT rules.
type dnatHomes struct {
	mu sync.Mutex
	m  map[string]map[string]string
}

// add records that fwID may hold vmID's DNAT rules.
func (h *dnatHomes) add(vmID, fwID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]map[string]string{}
	}
	k := inventory.Key(vmID)
	if h.m[k] == nil {
		h.m[k] = map[string]string{}
	}
	h.m[k][inventory.Key(fwID)] = fwID
}

// others returns the firewalls, other than current, that may hold vmID's
// DNAT rules, sorted by key.
func (h *dnatHomes) others(vmID, current string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.m[inventory.Key(vmID)]
	keys := make([]string, 0, len(set))
	for k := range set {
		if current == "" || k != inventory.Key(current) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = set[k]
	}
	return out
}

// settle records the outcome of a successful Apply: vmID's rules are now
// on fwID if holds, and nowhere else.
func (h *dnatHomes) settle(vmID, fwID string, holds bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := inventory.Key(vmID)
	if !holds || fwID == "" {
		delete(h.m, k)
		return
	}
	if h.m == nil {
		h.m = map[string]map[string]string{}
	}
	h.m[k] = map[string]string{inventory.Key(fwID): fwID}
}

// forget drops vmID's DNAT baseline: its rules moved to another firewall
// (or off any), so what it left on the old one says nothing about drift
// on the new one.
func (b *dnatBaselines) forget(vmID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, inventory.Key(vmID))
}

// readStrays reads the firewalls other than the VM's own that may hold
// its DNAT rules and puts them in objs for the placement to clean. A
// firewall that is gone holds nothing.
func (p *Provider) readStrays(ctx context.Context, vm inventory.VM, objs memObjects) ([]*fwRead, error) {
	var out []*fwRead
	for _, id := range p.homes.others(vm.ID, vm.Firewall) {
		fr, err := p.readFirewall(ctx, id)
		if err != nil {
			return nil, err
		}
		if fr == nil {
			continue
		}
		putModel(objs, inventory.KindFirewall, fr.model.ID, fr.model)
		out = append(out, fr)
	}
	return out, nil
}

// strayWrites returns the PUTs that take the VM's rules off the stray
// firewalls, as the placement left them in objs.
func strayWrites(ctx context.Context, strays []*fwRead, objs memObjects) ([]*fwWrite, error) {
	var out []*fwWrite
	for _, fr := range strays {
		var after inventory.Firewall
		if err := objs.GetObject(ctx, inventory.KindFirewall, inventory.Key(fr.model.ID), &after); err != nil {
			return nil, err
		}
		w, err := firewallWrite(fr, after)
		if err != nil {
			return nil, err
		}
		if w != nil {
			out = append(out, w)
		}
	}
	return out, nil
}
