package api

import (
	"encoding/json"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// PolicyResource is Azure's jitNetworkAccessPolicies resource body, as PUT
// and returned.
type PolicyResource struct {
	ID         string           `json:"id,omitempty"`
	Name       string           `json:"name,omitempty"`
	Type       string           `json:"type,omitempty"`
	Kind       string           `json:"kind,omitempty"`
	Location   string           `json:"location,omitempty"`
	Properties PolicyProperties `json:"properties"`
	// SystemData is ARM's read-only metadata: accepted on PUT (a body read
	// from Azure carries it) and ignored; drawbridge never answers it.
	SystemData json.RawMessage `json:"systemData,omitempty"`
}

// PolicyProperties is the properties object of a policy.
type PolicyProperties struct {
	VirtualMachines   []jit.VMPolicy    `json:"virtualMachines"`
	Requests          []RequestResource `json:"requests,omitempty"`
	ProvisioningState string            `json:"provisioningState,omitempty"`
	// ProvisioningError is a drawbridge extension: why a provider failed.
	ProvisioningError string `json:"provisioningError,omitempty"`
}

// RequestResource is Azure's JitNetworkAccessRequest, with drawbridge's
// request ID and per-grant details as extensions.
type RequestResource struct {
	ID              string      `json:"id,omitempty"`
	VirtualMachines []RequestVM `json:"virtualMachines"`
	StartTimeUtc    time.Time   `json:"startTimeUtc"`
	Requestor       string      `json:"requestor"`
	Justification   string      `json:"justification,omitempty"`
}

// RequestVM is one VM of a request.
type RequestVM struct {
	ID    string        `json:"id"`
	Ports []RequestPort `json:"ports"`
}

// RequestPort is Azure's JitNetworkAccessRequestPort plus drawbridge's grant
// ID and whether the firewall enforces it.
type RequestPort struct {
	Number                     int        `json:"number"`
	AllowedSourceAddressPrefix string     `json:"allowedSourceAddressPrefix,omitempty"`
	EndTimeUtc                 time.Time  `json:"endTimeUtc"`
	Status                     jit.Status `json:"status"`
	StatusReason               jit.Reason `json:"statusReason"`
	// MappedPort is the specification's port an Azure Firewall maps this
	// one to: the port of ConnectTo, for a VM behind a classic firewall.
	MappedPort int `json:"mappedPort,omitempty"`
	// ConnectTo is where the requester connects when it is not the VM
	// (the firewall's public address and MappedPort), "198.18.0.20:50000".
	ConnectTo     string `json:"connectTo,omitempty"`
	GrantID       string `json:"grantId,omitempty"`
	Applied       bool   `json:"applied"`
	ProviderError string `json:"providerError,omitempty"`
	// DrawbridgeStatus and DrawbridgeStatusReason carry drawbridge's state
	// on the Azure endpoints when it is outside the specification's enums
	// (see specState); Status and StatusReason then hold the nearest spec value.
	DrawbridgeStatus       jit.Status `json:"drawbridgeStatus,omitempty"`
	DrawbridgeStatusReason jit.Reason `json:"drawbridgeStatusReason,omitempty"`
}

// ListResponse is Azure's list envelope.
type ListResponse[T any] struct {
	Value    []T    `json:"value"`
	NextLink string `json:"nextLink,omitempty"`
}

// ErrorResponse is Azure's error envelope.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody names what went wrong; Target is the bad field, when there is one.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target,omitempty"`
}

// SimpleRequest is drawbridge's short form of a request, used by the CLI:
// ports on one VM, found through its policy.
type SimpleRequest struct {
	VM            string `json:"vm"` // resource ID, or a name as vm list shows it
	Ports         []int  `json:"ports"`
	Duration      string `json:"duration,omitempty"`   // ISO 8601 or Go syntax
	EndTimeUtc    string `json:"endTimeUtc,omitempty"` // RFC 3339
	Source        string `json:"source,omitempty"`     // default: the caller's address
	Justification string `json:"justification,omitempty"`
}

// VMSummary is one row of GET /drawbridge/v1/vms.
type VMSummary struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Cloud    string `json:"cloud"`
	Provider string `json:"provider"`
	Location string `json:"location,omitempty"`
	Policy   string `json:"policy,omitempty"` // ID of the JIT policy guarding it
	Guarded  []int  `json:"guardedPorts,omitempty"`
	Active   int    `json:"activeGrants"`
}
