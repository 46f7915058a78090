package jit

import "time"

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
