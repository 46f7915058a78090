package jit

import (
	"context"
	"errors"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
)

// change is one run of a writing transaction: the transaction, the time it
// runs at, and what it leaves behind besides its writes: audit records
// (appended together at the end of the run, in the order they were made),
// events to publish once it commits, and VMs to reconcile after commit.
// write makes a fresh change for every run of the transaction function (a
// backend may run it more than once), so nothing of a run that rolled back
// can reach the one that commits.
type change struct {
	ctx     context.Context
	tx      Tx
	now     time.Time
	records []audit.Record
	events  []Event
	later   []string // VMs whose provider lives outside the store
	wake    bool     // nudge the expiry job after commit (see wakeExpiry)
	wakeAt  time.Time
}

// audit queues one succeeded audit record.
func (c *change) audit(actor Actor, op, target, detail string, before, after any) error {
	rec, err := audit.NewSucceeded(c.now, actor.Principal, actor.Address, op, target, detail, before, after)
	if err != nil {
		return err
	}
	c.records = append(c.records, rec)
	return nil
}

// grantEvents queues one event of kind per grant.
func (c *change) grantEvents(kind EventKind, actor Actor, requestor string, grants []Grant, reason Reason, detail string) {
	for _, g := range grants {
		c.events = append(c.events, grantEvent(kind, actor, requestor, g, reason, detail, c.now))
	}
}

// wakeExpiry nudges the expiry job after commit if something ends at end
// before its deadline (a zero end always wakes it).
func (c *change) wakeExpiry(end time.Time) { c.wake, c.wakeAt = true, end }

// afterCommit is what write did once the change committed: the VMs it
// reconciled and those reconciles' failures (which do not undo the change).
type afterCommit struct {
	reconciled []string
	failures   []error
}

func (a afterCommit) err() error { return errors.Join(a.failures...) }

// write is the one path by which the service changes anything. It locks
// the VMs named by lock (inventory keys) in this process, runs fn in one
// writing transaction with a fresh change per run and appends the change's
// audit records in that transaction. Once it committed, it publishes the
// events, unlocks, nudges the expiry job and reconciles the VMs fn left
// for after commit. fn's result is that of the run that committed.
func write[T any](ctx context.Context, s *Service, lock []string, fn func(c *change) (T, error)) (T, afterCommit, error) {
	unlock := s.lockVMs(lock)
	var out T
	var done *change
	err := s.store.InTx(ctx, func(tx Tx) error {
		c := &change{ctx: ctx, tx: tx, now: s.clock.Now().UTC()}
		v, err := fn(c)
		if err != nil {
			return err
		}
		if _, err := auditstore.AppendAll(ctx, tx, c.records); err != nil {
			return err
		}
		out, done = v, c
		return nil
	})
	if err != nil {
		unlock()
		var zero T
		return zero, afterCommit{}, err
	}
	// Published before unlocking, so that the events of changes to one VM
	// go out in the order the changes committed.
	if s.events != nil && len(done.events) > 0 {
		s.events.Publish(done.events)
	}
	unlock()
	if done.wake {
		s.nudgeExpiry(done.wakeAt)
	}
	var after afterCommit
	for _, vmID := range done.later {
		after.reconciled = append(after.reconciled, vmID)
		if err := s.ReconcileVM(ctx, vmID); err != nil {
			after.failures = append(after.failures, err)
		}
	}
	return out, after, nil
}

// readTx runs one read in its own read-only transaction and returns its result.
func readTx[T any](ctx context.Context, st Store, read func(Tx) (T, error)) (T, error) {
	var out T
	err := st.ReadTx(ctx, func(tx Tx) error {
		var err error
		out, err = read(tx)
		return err
	})
	return out, err
}
