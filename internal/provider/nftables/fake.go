package nftables

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"

	"github.com/drawbridge/drawbridge/internal/clock"
)

// Fake is an in-memory Firewall for tests of code that drives one (the
// agent). It keeps the same elements the kernel would (buildPlan is shared
// with Kernel), expires them by its clock as the kernel does by its own, and
// reports them through Observe in the same shape. It records how many
// Applies changed something, and can be told to fail.
type Fake struct {
	mu      sync.Mutex
	clock   clock.Clock
	enabled bool
	content plan
	// Changes counts Apply and Disable calls that changed the content.
	Changes int
	// Err, if set, is returned by every call (after validation), which
	// then changes nothing: a stand-in for a netlink failure.
	Err error
}

var _ Firewall = (*Fake)(nil)

// NewFake returns an empty fake (no table) on clock c.
func NewFake(c clock.Clock) *Fake {
	return &Fake{clock: c}
}

// Enabled reports whether the fake's table exists.
func (f *Fake) Enabled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.enabled
}

// Apply implements Firewall.
func (f *Fake) Apply(ctx context.Context, st State) error {
	if err := st.Validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return f.Err
	}
	now := f.clock.Now()
	want := buildPlan(st, now)
	have := f.live()
	changed := !f.enabled || !maps.EqualFunc(have.guard, want.guard, slices.Equal[[]uint16])
	for _, id := range allowSets {
		del, add, kept := diffElems(have.allow[id], want.allow[id], DefaultTolerance)
		if len(del) > 0 || len(add) > 0 {
			changed = true
		}
		// Kept elements keep their old end, as in the kernel.
		want.allow[id] = kept
	}
	f.enabled = true
	f.content = want
	if changed {
		f.Changes++
	}
	return nil
}

// Observe implements Firewall.
func (f *Fake) Observe(ctx context.Context) (State, error) {
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return State{}, f.Err
	}
	if !f.enabled {
		return State{}, nil
	}
	return stateOf(f.live()), nil
}

// Disable implements Firewall.
func (f *Fake) Disable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return f.Err
	}
	if f.enabled {
		f.Changes++
	}
	f.enabled = false
	f.content = plan{}
	return nil
}

// live is the content without the elements the kernel would have expired.
func (f *Fake) live() plan {
	now := f.clock.Now()
	p := plan{guard: map[uint8][]uint16{}, allow: map[setID][]elem{}}
	maps.Copy(p.guard, f.content.guard)
	for id, es := range f.content.allow {
		for _, e := range es {
			if e.end.After(now) {
				p.allow[id] = append(p.allow[id], e)
			}
		}
	}
	return p
}

// ErrInjected is a ready-made error to set as Fake.Err.
var ErrInjected = errors.New("nftables fake: injected netlink failure")
