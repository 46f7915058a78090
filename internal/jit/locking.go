package jit

import (
	"slices"
	"sync"
)

// keyedMutex serialises work per VM inside one process, so that reading the
// desired state and applying it cannot interleave with another change to
// the same VM. Locks are taken in sorted order to avoid deadlock.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*refLock
}

type refLock struct {
	sync.Mutex
	refs int
}

func (k *keyedMutex) lockVMs(keys []string) func() {
	ks := slices.Compact(slices.Sorted(slices.Values(keys)))
	var held []*refLock
	for _, key := range ks {
		k.mu.Lock()
		if k.locks == nil {
			k.locks = map[string]*refLock{}
		}
		l := k.locks[key]
		if l == nil {
			l = &refLock{}
			k.locks[key] = l
		}
		l.refs++
		k.mu.Unlock()
		l.Lock()
		held = append(held, l)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			for i := len(held) - 1; i >= 0; i-- {
				held[i].Unlock()
				k.mu.Lock()
				held[i].refs--
				if held[i].refs == 0 {
					delete(k.locks, ks[i])
				}
				k.mu.Unlock()
			}
		})
	}
}

func (s *Service) lockVMs(keys []string) func() { return s.vmLocks.lockVMs(keys) }
