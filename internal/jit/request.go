package jit

import (
	"net/netip"
	"time"
)

// Request is one initiate call: who asked, why, and the grants it produced
// (one per VM and port).
type Request struct {
	ID            string    `json:"id"`
	PolicyID      string    `json:"policyId"`
	Requestor     string    `json:"requestor"`
	SourceAddress string    `json:"sourceAddress,omitempty"` // the caller's address
	Justification string    `json:"justification,omitempty"`
	StartTime     time.Time `json:"startTimeUtc"`
	Grants        []Grant   `json:"grants"`
}

// Grant is one opened (VM, port, protocol, source, end time).
type Grant struct {
	ID        string    `json:"id"`
	RequestID string    `json:"requestId"`
	PolicyID  string    `json:"policyId"`
	VMID      string    `json:"vmId"`
	Port      int       `json:"port"`
	Protocol  string    `json:"protocol"`
	Source    Source    `json:"source"`
	StartTime time.Time `json:"startTimeUtc"`
	EndTime   time.Time `json:"endTimeUtc"`

	Status       Status    `json:"status"`
	StatusReason Reason    `json:"statusReason"`
	EndedAt      time.Time `json:"endedAt,omitzero"`

	// Applied is set once the provider reports the firewall matches the
	// grant's status; ProviderError holds the last failure to get there.
	Applied       bool      `json:"applied"`
	AppliedAt     time.Time `json:"appliedAt,omitzero"`
	ProviderError string    `json:"providerError,omitempty"`
	// ConnectTo is where the requester connects when it is not the VM
	// itself: the public address and port of a DNAT rule a firewall in
	// front of the VM listens on (see Observed.ConnectTo). Zero: the VM.
	ConnectTo netip.AddrPort `json:"connectTo,omitzero"`
}

// InitiateInput is Azure's initiate body, already decoded.
type InitiateInput struct {
	VirtualMachines []InitiateVM `json:"virtualMachines"`
	Justification   string       `json:"justification,omitempty"`
}

// InitiateVM asks for ports on one VM.
type InitiateVM struct {
	ID    string         `json:"id"`
	Ports []InitiatePort `json:"ports"`
}

// InitiatePort asks for one port until EndTimeUtc (or for Duration, a
// drawbridge extension) from AllowedSourceAddressPrefix (default: the caller's address).
type InitiatePort struct {
	Number                     int       `json:"number"`
	EndTimeUtc                 time.Time `json:"endTimeUtc,omitzero"`
	Duration                   string    `json:"duration,omitempty"` // ISO 8601 or Go syntax (90s, 1h)
	AllowedSourceAddressPrefix string    `json:"allowedSourceAddressPrefix,omitempty"`
}

// Actor is who performs an operation and from where.
type Actor struct {
	Principal string
	Address   string   // the caller's address as seen by the server; may be empty
	Groups    []string // the caller's groups (approvals check membership)
}

// GrantFilter selects grants. Zero fields match everything.
type GrantFilter struct {
	VMID       string
	PolicyID   string
	Port       int
	ActiveOnly bool // status Initiated
	Limit      int
}

// WithStateOf returns g with the mutable fields of next: status, reason,
// end, and the apply bookkeeping. It is what Tx.UpdateGrant may change, so a
// caller holding a stale or partial Grant cannot rewrite a grant's identity,
// port, source or times. A Pending grant (g) has not started yet: it also
// takes next's start and end time and protocol, those it opens with once
// approved.
func (g Grant) WithStateOf(next Grant) Grant {
	if g.Status == StatusPending && !next.EndTime.IsZero() {
		g.StartTime, g.EndTime, g.Protocol = utc(next.StartTime), utc(next.EndTime), next.Protocol
	}
	g.Status, g.StatusReason, g.EndedAt = next.Status, next.StatusReason, utc(next.EndedAt)
	g.Applied, g.AppliedAt = next.Applied, utc(next.AppliedAt)
	g.ProviderError, g.ConnectTo = next.ProviderError, next.ConnectTo
	return g
}

// InUTC returns g with every time in UTC and without a monotonic reading,
// so that what a store reads back equals what was written.
func (g Grant) InUTC() Grant {
	g.StartTime, g.EndTime = utc(g.StartTime), utc(g.EndTime)
	g.EndedAt, g.AppliedAt = utc(g.EndedAt), utc(g.AppliedAt)
	return g
}

// InUTC returns p with its times in UTC (see Grant.InUTC).
func (p Policy) InUTC() Policy {
	p.CreatedAt, p.UpdatedAt = utc(p.CreatedAt), utc(p.UpdatedAt)
	return p
}

// utc drops the monotonic reading and location; the zero time stays zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}
