package sim

import (
	"bytes"
	"context"
	"errors"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

var _ jit.TxPlanner = (*Provider)(nil)

// plan is ApplyTx worked out ahead (PlanTx): the bytes of every object the
// reconcile read, and the writes it would make from them. Reconcile is a
// function of those objects and the desired state, so while they are
// unchanged the writes are exactly what ApplyTx would make.
type plan struct {
	reads    []planRead
	writes   []change
	enforced []string
}

type planRead struct {
	key  objKey
	body []byte // nil: the object did not exist
}

// PlanTx implements jit.TxPlanner. It returns a nil plan (and no error)
// where a plan could not be checked cheaply later: a store that does not
// give stored bytes, or a reconcile that had to list a whole kind (a VM
// without a footprint yet). Reconcile errors are returned as ApplyTx
// would return them.
func (p *Provider) PlanTx(ctx context.Context, objs store.Objects, vm inventory.VM, desired jit.Desired) (jit.TxPlan, error) {
	if _, ok := objs.(rawGetter); !ok {
		return nil, nil
	}
	s := newSession(ctx, objs)
	enforced, err := s.reconcile(vm, desired)
	if err != nil {
		return nil, err
	}
	if s.listed {
		return nil, nil
	}
	writes, err := s.changes(true)
	if err != nil {
		return nil, err
	}
	pl := &plan{writes: writes, enforced: enforced}
	for k, e := range s.m {
		if e.read {
			pl.reads = append(pl.reads, planRead{key: k, body: e.orig})
		}
	}
	return pl, nil
}

// ApplyIfCurrent implements jit.TxPlan.
func (pl *plan) ApplyIfCurrent(ctx context.Context, objs store.Objects) (jit.Observed, bool, error) {
	rg, ok1 := objs.(rawGetter)
	rp, ok2 := objs.(rawPutter)
	if !ok1 || !ok2 {
		return jit.Observed{}, false, nil
	}
	for _, r := range pl.reads {
		cur, err := rg.GetObjectRaw(ctx, r.key.kind, r.key.key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if r.body != nil {
				return jit.Observed{}, false, nil
			}
		case err != nil:
			return jit.Observed{}, false, err
		case r.body == nil || !bytes.Equal(cur, r.body):
			return jit.Observed{}, false, nil
		}
	}
	if err := writeChanges(ctx, objs, rp, pl.writes); err != nil {
		return jit.Observed{}, false, err
	}
	return jit.Observed{Enforced: pl.enforced}, true, nil
}
