package jit

import (
	"context"
	"time"
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
		if wait < 0 {
			wait = 0
		}
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
