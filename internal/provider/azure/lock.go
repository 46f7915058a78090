package azure

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
)

// nsgLocks serialises this process's changes to one NSG. Two VMs behind
// the same subnet NSG reconciled at once would otherwise plan the same
// free priority from the same read, and the second write would fail with
// SecurityRuleConflict. (Writers outside this process, another replica or
// a person, can still collide: that conflict is re-planned, see apply.)
type nsgLocks struct {
	mu sync.Mutex
	m  map[string]*sync.Mutex
}

// lock locks the NSGs in key order, so that two VMs sharing several never
// deadlock, and returns the unlock.
func (l *nsgLocks) lock(keys []string) func() {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*sync.Mutex{}
	}
	ms := make([]*sync.Mutex, len(keys))
	for i, k := range keys {
		if l.m[k] == nil {
			l.m[k] = &sync.Mutex{}
		}
		ms[i] = l.m[k]
	}
	l.mu.Unlock()
	for _, m := range ms {
		m.Lock()
	}
	return func() {
		for i := len(ms) - 1; i >= 0; i-- {
			ms[i].Unlock()
		}
	}
}

func (pl plan) nsgKeys() []string {
	var out []string
	for _, id := range pl.nsgs {
		out = append(out, inventory.Key(id))
	}
	if pl.fwID != "" {
		out = append(out, inventory.Key(pl.fwID))
	}
	for _, id := range pl.strayIDs {
		out = append(out, inventory.Key(id))
	}
	return out
}

// conflict reports whether err is Azure refusing a rule whose priority
// another rule took since the plan's read, or a firewall PUT whose If-Match
// etag someone else's write made stale (412).
func conflict(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && (re.StatusCode == 400 && re.ErrorCode == "SecurityRuleConflict" || re.StatusCode == 412)
}

// maxAttempts bounds re-planning after the NSG set changed under the lock
// or a concurrent writer took a priority.
const maxAttempts = 6

// apply plans under the locks of every NSG on the VM's path and executes,
// re-planning from a fresh read when the path changed between the unlocked
// first read and the locked one, or when Azure reports a priority conflict.
func (p *Provider) apply(ctx context.Context, vm inventory.VM, desired jit.Desired) (plan, error) {
	var last error
	for range maxAttempts {
		probe, err := p.plan(ctx, vm, desired)
		if err != nil {
			return plan{}, err
		}
		unlock := p.locks.lock(probe.nsgKeys())
		pl, err := p.plan(ctx, vm, desired)
		if err != nil {
			unlock()
			return plan{}, err
		}
		if !slices.Equal(sortedKeys(pl.nsgKeys()), sortedKeys(probe.nsgKeys())) {
			unlock()
			last = errors.New("the VM's network path changed while planning")
			continue
		}
		err = p.execute(ctx, pl)
		unlock()
		if err == nil {
			return pl, nil
		}
		if !conflict(err) {
			return plan{}, err
		}
		last = err
	}
	return plan{}, last
}

func sortedKeys(ks []string) []string {
	ks = slices.Clone(ks)
	slices.Sort(ks)
	return slices.Compact(ks)
}
