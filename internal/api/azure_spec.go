package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// What the jitNetworkAccessPolicies endpoints answer is held to Microsoft's
// REST specification of the resource (Microsoft.Security, 2020-01-01), so
// that Azure's own clients read it unchanged: enum values and their casing,
// status codes, api-version. drawbridge's richer states travel in extension
// fields beside the specification's (see SpecExtensions).

// APIVersions are the api-version values the jitNetworkAccessPolicies
// endpoints accept: the stable version every current SDK sends and the
// preview older SDKs sent. The bodies are the same in both.
var APIVersions = []string{"2015-06-01-preview", "2020-01-01"}

// checkAPIVersion answers 400 for an api-version Azure does not serve this
// resource type at, with ARM's code and wording for that case, and reports
// false. An absent api-version is accepted (ARM would answer 400
// MissingApiVersionParameter): drawbridge's own CLI and plain curl calls
// leave it out.
func checkAPIVersion(w http.ResponseWriter, r *http.Request) bool {
	v := r.URL.Query().Get("api-version")
	if v == "" || slices.Contains(APIVersions, v) {
		return true
	}
	writeError(w, http.StatusBadRequest, "NoRegisteredProviderFound", "api-version",
		"No registered resource provider found for location '"+r.PathValue("loc")+"' and API version '"+v+
			"' for type 'jitNetworkAccessPolicies'. The supported api-versions are '"+strings.Join(APIVersions, ", ")+"'.")
	return false
}

// specProtocol spells a JIT port's protocol as the resource's enum does
// (TCP, UDP, *); inside drawbridge it is netrule's NSG spelling (Tcp, Udp).
func specProtocol(p netrule.Protocol) netrule.Protocol {
	switch p {
	case netrule.Tcp:
		return "TCP"
	case netrule.Udp:
		return "UDP"
	}
	return p
}

// specVMs returns vms with every port's protocol in the resource's spelling.
func specVMs(vms []jit.VMPolicy) []jit.VMPolicy {
	out := make([]jit.VMPolicy, len(vms))
	for i, vm := range vms {
		out[i] = vm
		out[i].Ports = make([]jit.PortPolicy, len(vm.Ports))
		for j, p := range vm.Ports {
			p.Protocol = specProtocol(p.Protocol)
			out[i].Ports[j] = p
		}
	}
	return out
}

// specState maps a grant's status and reason to the specification's enums
// (status Initiated or Revoked; reason Expired, UserRequested or
// NewerRequestInitiated). A drawbridge state outside them is reported as
// the nearest spec state, and ok is false so that the caller adds the exact
// one as an extension:
//
//	Pending / AwaitingApproval  → Initiated / UserRequested (the user initiated it; applied stays false)
//	Revoked / PolicyRemoved     → Revoked / UserRequested (a user changed the policy)
//	Revoked / Denied            → Revoked / UserRequested (an approver refused it)
//	Revoked / ApprovalLapsed    → Revoked / Expired (nobody decided in time)
func specState(s jit.Status, r jit.Reason) (jit.Status, jit.Reason, bool) {
	status, reason := s, r
	if s == jit.StatusPending {
		status = jit.StatusInitiated
	}
	switch r {
	case jit.ReasonAwaitingApproval, jit.ReasonPolicyRemoved, jit.ReasonDenied:
		reason = jit.ReasonUserRequested
	case jit.ReasonApprovalLapsed:
		reason = jit.ReasonExpired
	}
	return status, reason, status == s && reason == r
}

// specRequest returns rq as the Azure endpoints answer it: statuses and
// reasons from the specification's enums, drawbridge's own in
// drawbridgeStatus / drawbridgeStatusReason where they differ.
func specRequest(rq RequestResource) RequestResource {
	out := rq
	out.VirtualMachines = make([]RequestVM, len(rq.VirtualMachines))
	for i, vm := range rq.VirtualMachines {
		out.VirtualMachines[i] = vm
		out.VirtualMachines[i].Ports = make([]RequestPort, len(vm.Ports))
		for j, p := range vm.Ports {
			status, reason, same := specState(p.Status, p.StatusReason)
			if !same {
				p.DrawbridgeStatus, p.DrawbridgeStatusReason = p.Status, p.StatusReason
			}
			p.Status, p.StatusReason = status, reason
			out.VirtualMachines[i].Ports[j] = p
		}
	}
	return out
}

// SpecExtensions is the machine-readable record of the fields drawbridge
// adds to the specification's bodies, keyed "Model:path" (the SDK model's
// name, then the JSON path inside it, "[]" for an array element), with
// what each means. Azure's SDK models skip unknown fields when they decode;
// the armcompat tests check that every field drawbridge answers is either
// in the SDK's model, with its value kept, or listed here.
var SpecExtensions = map[string]string{
	"JitNetworkAccessPolicy:properties.provisioningError":                         "why the last provisioning failed (with provisioningState Failed)",
	"JitNetworkAccessPolicy:properties.virtualMachines[].ports[].requireApproval": "approvals a request for this port needs before it opens (accepted on PUT too)",
	"JitNetworkAccessRequest:id":                                                  "the request's ID (approve, deny and the audit log refer to it)",
	"JitNetworkAccessRequest:virtualMachines[].ports[].grantId":                   "the grant opened for this port (/drawbridge/v1/grants/{grantId})",
	"JitNetworkAccessRequest:virtualMachines[].ports[].applied":                   "whether the firewall enforces the grant's current status now",
	"JitNetworkAccessRequest:virtualMachines[].ports[].providerError":             "the provider's last failure to enforce the grant",
	"JitNetworkAccessRequest:virtualMachines[].ports[].connectTo":                 "where the requester connects when not the VM: an Azure Firewall's public address and mappedPort",
	"JitNetworkAccessRequest:virtualMachines[].ports[].drawbridgeStatus":          "drawbridge's status where it is outside the specification's enum (Pending)",
	"JitNetworkAccessRequest:virtualMachines[].ports[].drawbridgeStatusReason":    "drawbridge's reason where it is outside the specification's enum (PolicyRemoved, AwaitingApproval, Denied, ApprovalLapsed)",
	"JitNetworkAccessPolicyInitiatePort:duration":                                 "request input: a duration (ISO 8601 or 90s, 1h) instead of endTimeUtc",
}
