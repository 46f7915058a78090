package jit

import (
	"fmt"
	"time"
)

// The grant state machine. A grant is one opened (VM, port, protocol,
// source, end time). Azure reports two statuses per port, Initiated and
// Revoked, and a reason; drawbridge keeps exactly those words.
//
//	            (request accepted)
//	                   │
//	                   ▼
//	             ┌───────────┐  end time reached      ┌─────────┐
//	             │ Initiated │───────────────────────▶│ Revoked │ reason Expired
//	             └───────────┘  newer request, same   └─────────┘ reason NewerRequestInitiated
//	                            VM and port                      reason UserRequested (early revoke)
//	                            revoke by a user                 reason PolicyRemoved (port no longer guarded)
//
// With approvals (a drawbridge extension), a request for a port whose
// policy says requireApproval is stored with Pending grants and waits:
//
//	  (request accepted, approval required)
//	                   │
//	                   ▼
//	             ┌───────────┐  count approvals from the group   ┌───────────┐
//	             │  Pending  │──────────────────────────────────▶│ Initiated │ (then as above)
//	             └───────────┘                                   └───────────┘
//	                   │ denied by an approver                   ┌─────────┐
//	                   ├────────────────────────────────────────▶│ Revoked │ reason Denied
//	                   │ not decided within the approval timeout └─────────┘ reason ApprovalLapsed
//	                   └────────────────────────────────────────▶
//
// A Pending grant is a grant row that is never active (never in Desired,
// never due): the last approval turns the same row, with the same ID, into
// Initiated, its time window starting at the approval (approval.go,
// service_approval.go).
//
// Revoked is final. "Applied" says whether the provider has confirmed that
// the firewall enforces the grant now: it becomes true once an Initiated
// grant is in force and false when the grant ends (the firewall view, not
// this flag, shows that an ended grant's rule is gone).

// Status is a grant's state as Azure reports it per port.
type Status string

const (
	StatusInitiated Status = "Initiated"
	StatusRevoked   Status = "Revoked"
	StatusPending   Status = "Pending" // waiting for approvals; never enforced
)

// Reason says why a grant has its status (Azure's statusReason).
type Reason string

const (
	// ReasonUserRequested: the grant was opened by a user's request, or, on a
	// revoked grant, ended early by a user.
	ReasonUserRequested Reason = "UserRequested"
	// ReasonExpired: the end time was reached.
	ReasonExpired Reason = "Expired"
	// ReasonNewerRequestInitiated: a newer request for the same VM and port replaced it.
	ReasonNewerRequestInitiated Reason = "NewerRequestInitiated"
	// ReasonPolicyRemoved: the port, VM or whole policy stopped being guarded.
	ReasonPolicyRemoved Reason = "PolicyRemoved"
	// ReasonAwaitingApproval: a Pending grant waits for approvals.
	ReasonAwaitingApproval Reason = "AwaitingApproval"
	// ReasonDenied: an approver denied the request before it opened.
	ReasonDenied Reason = "Denied"
	// ReasonApprovalLapsed: nobody decided within the approval timeout.
	ReasonApprovalLapsed Reason = "ApprovalLapsed"
)

// IsActive reports whether the grant should be enforced at time now:
// initiated and not yet at its end time.
func (g Grant) IsActive(now time.Time) bool {
	return g.Status == StatusInitiated && now.Before(g.EndTime)
}

// End moves an Initiated grant to Revoked with reason at time at. Ending a
// grant that is already revoked is an error, so that every end is recorded once.
func (g Grant) End(reason Reason, at time.Time) (Grant, error) {
	if g.Status != StatusInitiated {
		return g, fmt.Errorf("grant %s is already %s (%s)", g.ID, g.Status, g.StatusReason)
	}
	switch reason {
	case ReasonExpired, ReasonUserRequested, ReasonNewerRequestInitiated, ReasonPolicyRemoved:
	default:
		return g, fmt.Errorf("grant %s: %q is not an end reason", g.ID, reason)
	}
	g.Status, g.StatusReason, g.EndedAt = StatusRevoked, reason, at
	g.Applied, g.AppliedAt = false, time.Time{} // the provider has yet to remove it
	return g, nil
}
