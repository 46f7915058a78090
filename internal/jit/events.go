package jit

import (
	"context"
	"reflect"
	"sync"
	"time"
)

// EventKind names a change that notifications (webhooks) report.
type EventKind string

const (
	// EventRequested: a request was accepted (it opens at once, or waits
	// for approval).
	EventRequested EventKind = "requested"
	// EventApproved: the last approval a request needed was given; its
	// grants open in the same transaction (an EventOpened follows).
	EventApproved EventKind = "approved"
	// EventDenied: a request waiting for approval ended without opening:
	// denied by an approver (reason Denied) or not decided in time (reason
	// ApprovalLapsed).
	EventDenied EventKind = "denied"
	// EventOpened: a grant became Initiated (the firewall is being opened).
	EventOpened EventKind = "opened"
	// EventClosed: a grant ended; the reason says why (Expired,
	// UserRequested, NewerRequestInitiated, PolicyRemoved).
	EventClosed EventKind = "closed"
)

// Event is one committed change to a grant, for notifications. A request
// for several ports yields one event per port.
type Event struct {
	Kind EventKind
	Time time.Time
	// Principal is who caused the change (SystemPrincipal for expiry and
	// lapse); Requestor whose request it concerns, when known.
	Principal string
	Requestor string
	VMID      string
	Port      int
	Protocol  string
	Source    string
	EndTime   time.Time
	GrantID   string
	RequestID string
	// Reason is the grant's status reason (closed, denied) or
	// AwaitingApproval for a request that waits.
	Reason Reason
	// Detail is the justification (requested) or the denial's reason (denied).
	Detail string
}

// EventSink receives the events of a transaction after it commits, in the
// order they happened in it. Publish is called on the request path and
// must not block (queue and deliver asynchronously).
type EventSink interface {
	Publish([]Event)
}

// eventLog collects the events of the transactions in flight, keyed by
// their Tx, so that only committed ones are published. A nil *eventLog
// collects nothing.
type eventLog struct {
	sink EventSink
	mu   sync.Mutex
	open map[Tx]*[]Event
}

func (l *eventLog) add(tx Tx, evs ...Event) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if buf := l.open[tx]; buf != nil {
		*buf = append(*buf, evs...)
	}
}

// addGrants adds one event of kind per grant of a request.
func (l *eventLog) addGrants(tx Tx, kind EventKind, actor Actor, requestor string, grants []Grant, reason Reason, detail string, now time.Time) {
	if l == nil {
		return
	}
	for _, g := range grants {
		l.add(tx, grantEvent(kind, actor, requestor, g, reason, detail, now))
	}
}

func grantEvent(kind EventKind, actor Actor, requestor string, g Grant, reason Reason, detail string, now time.Time) Event {
	return Event{
		Kind: kind, Time: now, Principal: actor.Principal, Requestor: requestor,
		VMID: g.VMID, Port: g.Port, Protocol: g.Protocol, Source: g.Source.String(), EndTime: g.EndTime,
		GrantID: g.ID, RequestID: g.RequestID, Reason: reason, Detail: detail,
	}
}

// eventStore runs each transaction with an event buffer and publishes the
// buffer only once the transaction committed. A backend that retries fn
// starts a fresh buffer per attempt, so only the committed attempt's events
// go out.
type eventStore struct {
	Store
	log *eventLog
}

func (s eventStore) InTx(ctx context.Context, fn func(Tx) error) error {
	var committed []Event
	err := s.Store.InTx(ctx, func(tx Tx) error {
		committed = nil
		if !reflect.TypeOf(tx).Comparable() {
			return fn(tx) // cannot key a buffer on it: no events
		}
		buf := new([]Event)
		s.log.mu.Lock()
		s.log.open[tx] = buf
		s.log.mu.Unlock()
		defer func() {
			s.log.mu.Lock()
			delete(s.log.open, tx)
			s.log.mu.Unlock()
		}()
		if err := fn(tx); err != nil {
			return err
		}
		s.log.mu.Lock()
		committed = *buf
		s.log.mu.Unlock()
		return nil
	})
	if err == nil && len(committed) > 0 {
		s.log.sink.Publish(committed)
	}
	return err
}

// ReadTx passes through: a read-only transaction changes nothing, so it
// has no event buffer and publishes nothing (events added in it are dropped).
func (s eventStore) ReadTx(ctx context.Context, fn func(Tx) error) error {
	return s.Store.ReadTx(ctx, fn)
}
