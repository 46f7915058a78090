package jit

import (
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

func grantEvent(kind EventKind, actor Actor, requestor string, g Grant, reason Reason, detail string, now time.Time) Event {
	return Event{
		Kind: kind, Time: now, Principal: actor.Principal, Requestor: requestor,
		VMID: g.VMID, Port: g.Port, Protocol: g.Protocol, Source: g.Source.String(), EndTime: g.EndTime,
		GrantID: g.ID, RequestID: g.RequestID, Reason: reason, Detail: detail,
	}
}
