// Package strcache remembers the results of a pure function of a string
// (lower-casing a resource ID, hashing it into a rule name), for functions
// called many times per request on the same few thousand IDs. It is safe
// for concurrent use; a hit is a lock-free map lookup.
package strcache

import (
	"sync"
	"sync/atomic"
)

// Func is f with its results remembered, up to max of them (past that the
// cache starts again empty).
type Func struct {
	f   func(string) string
	max int64
	m   atomic.Pointer[sync.Map]
	n   atomic.Int64
}

// New returns f with up to max results remembered. f must be pure: the
// same argument always gives the same result.
func New(f func(string) string, max int) *Func {
	c := &Func{f: f, max: int64(max)}
	c.m.Store(new(sync.Map))
	return c
}

// MaxLen is the longest argument remembered (resource IDs are far
// shorter); longer ones are computed every time, so that the cache's
// memory stays bounded whatever callers pass.
const MaxLen = 512

// Get returns f(s).
func (c *Func) Get(s string) string {
	if len(s) > MaxLen {
		return c.f(s)
	}
	m := c.m.Load()
	if v, ok := m.Load(s); ok {
		return v.(string)
	}
	v := c.f(s)
	if c.n.Add(1) > c.max {
		c.m.Store(new(sync.Map))
		c.n.Store(0)
		return v
	}
	m.Store(s, v)
	return v
}
