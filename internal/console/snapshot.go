package console

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/assess"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// snapshotTTL is how old the VM list's inventory and assessment may be
// before a request starts refreshing them (in the background: the request
// is served from the older one). Policies and grants are always read fresh.
const snapshotTTL = 5 * time.Second

// snapshot is the inventory's VMs and their assessment, which the VM list
// needs on every page but which cost a full inventory read and an
// assessment (about a third of a second for 10,000 VMs on a busy machine).
type snapshot struct {
	vms     []inventory.VM
	meta    []vmMeta                 // per VM, what filtering needs, worked out once
	results map[string]assess.Result // by inventory.Key
	at      time.Time
}

// vmMeta is a VM's key, subscription and resource group, and its name
// and ID in lower case (for search).
type vmMeta struct{ key, sub, rg, name, id string }

type snapshotCache struct {
	mu         sync.Mutex
	cur        *snapshot
	refreshing bool
}

// snapshot returns a recent snapshot: the cached one if it is younger than
// snapshotTTL; an older one while a single background refresh runs; a new
// one, read now, when there is none.
func (c *Console) snapshot(ctx context.Context) (*snapshot, error) {
	sc := &c.snap
	sc.mu.Lock()
	cur := sc.cur
	stale := cur != nil && time.Since(cur.at) > snapshotTTL
	if stale && !sc.refreshing {
		sc.refreshing = true
		go func() {
			bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_, err := c.loadEstate(bg) // stores the new snapshot
			if err != nil {
				c.cfg.Logger.Warn("console: refreshing the VM list snapshot", "err", err)
			}
			sc.mu.Lock()
			sc.refreshing = false
			sc.mu.Unlock()
		}()
	}
	sc.mu.Unlock()
	if cur != nil {
		return cur, nil
	}
	if _, err := c.loadEstate(ctx); err != nil {
		return nil, err
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.cur, nil
}

// remember stores a fresh estate as the snapshot.
func (c *Console) remember(e *estate, at time.Time) {
	s := &snapshot{vms: e.inv.VMs, meta: make([]vmMeta, len(e.inv.VMs)), results: make(map[string]assess.Result, len(e.report.Results)), at: at}
	for _, r := range e.report.Results {
		s.results[inventory.Key(r.ID)] = r
	}
	for i, vm := range e.inv.VMs {
		id, _ := resource.Parse(vm.ID)
		s.meta[i] = vmMeta{key: inventory.Key(vm.ID), sub: id.Subscription(), rg: id.ResourceGroup(),
			name: strings.ToLower(vm.Name), id: strings.ToLower(vm.ID)}
	}
	c.snap.mu.Lock()
	defer c.snap.mu.Unlock()
	if c.snap.cur == nil || !at.Before(c.snap.cur.at) {
		c.snap.cur = s
	}
}
