package jit

import (
	"context"
	"slices"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
)

// idleWait bounds how long the expiry job sleeps when no grant is active; a
// new grant wakes it earlier through nudgeExpiry.
const idleWait = time.Hour

// RunExpiry ends grants at their end time until ctx is done. It does not
// poll: it sleeps until the earliest end time in the store and is woken when
// a request adds an earlier one. It first revokes everything that fell due
// while no server was running, so a restart closes overdue grants at once.
// onError, if set, hears about failures (the job keeps going).
func (s *Service) RunExpiry(ctx context.Context, onError func(error)) {
	report := func(err error) {
		if err != nil && onError != nil && ctx.Err() == nil {
			onError(err)
		}
	}
	retry := time.Duration(0)
	for {
		s.expiryDeadline.Store(0)
		_, err := s.ExpireDue(ctx)
		report(err)
		wait := idleWait
		if next, ok, err := s.NextEndTime(ctx); err != nil {
			report(err)
			wait = time.Second
		} else if ok {
			wait = next.Sub(s.clock.Now())
		}
		if err != nil {
			// Back off on store or provider failure, but never past the next end time.
			retry = min(max(retry*2, 50*time.Millisecond), 5*time.Second)
			wait = min(wait, retry)
		} else {
			retry = 0
		}
		wait = max(wait, 0)
		s.expiryDeadline.Store(s.clock.Now().Add(wait).UnixNano())
		t := s.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		case <-s.wake:
			t.Stop()
		}
	}
}

// RunResync reconciles every guarded VM every interval: the safety net of a
// level-triggered controller, and the retry path for provider failures
// (a failed VM is retried sooner, with backoff).
func (s *Service) RunResync(ctx context.Context, interval time.Duration, onError func(vmID string, err error)) {
	retry := time.Duration(0)
	for {
		failed, err := s.ReconcileAll(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := interval
		if err != nil || len(failed) > 0 {
			retry = min(max(retry*2, time.Second), interval)
			wait = retry
			if onError != nil {
				if err != nil {
					onError("", err)
				}
				for vm, e := range failed {
					onError(vm, e)
				}
			}
		} else {
			retry = 0
		}
		t := s.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// expireBatch bounds one expiry transaction.
const expireBatch = 500

// ExpireDue ends every Initiated grant whose end time has passed (reason
// Expired) and removes it from the firewall. It returns how many it ended.
// For providers in the store the status change and the firewall change
// commit together; a provider failure is recorded and retried, never a
// reason to keep a grant open.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	total := 0
	if _, err := s.LapseDue(ctx); err != nil {
		return 0, err
	}
	for {
		n, after, err := write(ctx, s, nil, s.expireDueBatch)
		if err != nil {
			return total, err
		}
		total += n
		if n < expireBatch {
			return total, after.err()
		}
	}
}

// expireDueBatch ends up to expireBatch due grants and applies their VMs.
func (s *Service) expireDueBatch(c *change) (int, error) {
	due, err := c.tx.DueGrants(c.ctx, c.now, expireBatch)
	if err != nil {
		return 0, err
	}
	vms := map[string]string{}
	for _, g := range due {
		if _, err := endGrant(c, Actor{Principal: SystemPrincipal}, g, ReasonExpired); err != nil {
			return 0, err
		}
		vms[inventory.Key(g.VMID)] = g.VMID
	}
	return len(due), s.applyInStore(c, sortedValues(vms), nil)
}

// earliestEnd returns the earliest end time of gs (zero if gs is empty).
func earliestEnd(gs []Grant) time.Time {
	if len(gs) == 0 {
		return time.Time{}
	}
	return slices.MinFunc(gs, func(a, b Grant) int { return a.EndTime.Compare(b.EndTime) }).EndTime
}

// NextEndTime returns the earliest end time of an active grant.
func (s *Service) NextEndTime(ctx context.Context) (time.Time, bool, error) {
	var t time.Time
	var ok bool
	err := s.store.ReadTx(ctx, func(tx Tx) error {
		var err error
		t, ok, err = tx.NextEndTime(ctx)
		return err
	})
	if err != nil {
		return t, ok, err
	}
	// Pending requests lapse on the same schedule.
	lapse, lok, err := s.nextLapse(ctx)
	if lok && (!ok || lapse.Before(t)) {
		t, ok = lapse, true
	}
	return t, ok, err
}

// nudgeExpiry wakes the expiry job if something ends at end, earlier than
// the job's own deadline (a zero end always wakes it). The job clears its
// deadline before reading the store, so a change committed after that read
// always finds the deadline either 0 or one computed without it, and wakes
// the job if it ends first.
func (s *Service) nudgeExpiry(end time.Time) {
	if d := s.expiryDeadline.Load(); d != 0 && !end.IsZero() && end.UnixNano() >= d {
		return
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
