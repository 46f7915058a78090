package jit

import (
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/drawbridge/drawbridge/internal/clock"
	"github.com/drawbridge/drawbridge/internal/inventory"
)

// Service is the JIT service: policies, requests, grants and their expiry.
// Every change to protection or access goes through reconcileVM, which reads
// the desired state from the store and hands it to the VM's provider, so
// repeating any step is harmless and a crash between steps is repaired by the
// next reconcile.
type Service struct {
	store     Store
	providers Providers
	clock     clock.Clock
	newID     func() string

	approvalTimeout time.Duration

	vmLocks keyedMutex
	wake    chan struct{} // nudges the expiry job when an earlier end time appears
	// expiryDeadline is when the sleeping expiry job wakes on its own, in
	// Unix nanoseconds of the service clock; 0 while it is awake and about
	// to read the store. A request only nudges the job when its grants end
	// before that, so requests under load do not each cost the job two
	// store reads.
	expiryDeadline atomic.Int64
	events         EventSink // nil without Config.Events

	// OnChange, if set, is called after a VM whose provider lives outside
	// the store was reconciled.
	OnChange func(vmID string)
}

// Config wires a Service.
type Config struct {
	Store     Store
	Providers Providers
	Clock     clock.Clock
	NewID     func() string
	// ApprovalTimeout is how long a request needing approval may stay
	// Pending before it lapses (default DefaultApprovalTimeout).
	ApprovalTimeout time.Duration
	// Events, if set, hears about requests and grants (requested,
	// approved, denied, opened, closed) after the change commits.
	Events EventSink
}

// NewService returns a service; call RunExpiry to enforce end times.
func NewService(c Config) *Service {
	return &Service{store: c.Store, providers: c.Providers, clock: c.Clock, newID: c.NewID, approvalTimeout: c.ApprovalTimeout, events: c.Events, wake: make(chan struct{}, 1)}
}

// Clock returns the service's clock.
func (s *Service) Clock() clock.Clock { return s.clock }

func requestVMs(r Request) []string {
	seen := map[string]string{}
	for _, g := range r.Grants {
		seen[inventory.Key(g.VMID)] = g.VMID
	}
	return sortedValues(seen)
}

// sortedValues returns m's values in the order of their keys.
func sortedValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

func lowerAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = inventory.Key(s)
	}
	return out
}
