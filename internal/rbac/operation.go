package rbac

import (
	"errors"
	"fmt"
	"sort"

	"github.com/drawbridge/drawbridge/internal/resource"
)

// Operation names one drawbridge API operation. The API checks it with
// Policy.AuthorizeOperation before calling the service.
type Operation string

const (
	OpPolicyPut    Operation = "policy.put"    // create or edit a JIT policy (target: each VM in it)
	OpPolicyGet    Operation = "policy.get"    // read one policy (target: the policy ID or its VM)
	OpPolicyList   Operation = "policy.list"   // list policies (target: the subscription or RG listed)
	OpPolicyDelete Operation = "policy.delete" // delete a policy (target: the policy ID or each VM)
	OpInitiate     Operation = "initiate"      // request access (target: the VM)
	OpRevoke       Operation = "revoke"        // end a grant early (target: the VM)
	OpGrantsList   Operation = "grants.list"   // JIT status: requests and grants (target: VM, RG or subscription)
	OpVMList       Operation = "vm.list"       // list VMs (target: the scope listed)
	OpVMRead       Operation = "vm.read"       // read one VM (target: the VM)
	OpNetworkView  Operation = "network.view"  // a VM's NICs, NSGs and effective rules (target: the VM)
	OpInventory    Operation = "inventory.apply"
	OpAssessRead   Operation = "assess.read" // the JIT recommendation (target: VM or scope)
	OpAssessFix    Operation = "assess.fix"  // enable JIT on a recommended VM (target: the VM)
	OpRoleRead     Operation = "role.read"   // list/show roles and assignments (target: the scope)
	OpRoleWrite    Operation = "role.write"  // create roles, assign, unassign (target: the assignment's scope)
	OpAuditRead    Operation = "audit.read"  // list, export, verify the audit log (target: the scope, "/" for all)
	OpTokenAdmin   Operation = "token.admin" // create, list, revoke API tokens (target: "/")
	OpApprove      Operation = "approve"     // approve or deny a pending request (target: the VM)
)

// ScopeKind says where, relative to the operation's target, an action is checked.
type ScopeKind int

const (
	// AtTarget checks at the target itself (so an assignment at the
	// target, its resource group, its subscription or "/" passes).
	AtTarget ScopeKind = iota
	// AtResourceGroup checks at the target's resource group (or its
	// subscription if it has none): an assignment at the resource group,
	// subscription or "/" passes; one at the VM alone, or at another resource
	// group, does not. The seed asks for this for policy writes: "on the
	// scope of a subscription or resource group".
	AtResourceGroup
)

func (k ScopeKind) String() string {
	if k == AtResourceGroup {
		return "resource group"
	}
	return "target"
}

func (k ScopeKind) resolve(target resource.ID) resource.ID {
	if k == AtResourceGroup && !target.Equal(resource.Root) {
		return target.ResourceGroupScope()
	}
	return target
}

// Requirement is one action an operation needs, and where it is checked.
type Requirement struct {
	Action string
	Scope  ScopeKind
}

// Action names used by operations.
const (
	ActJITRead     = "Microsoft.Security/locations/jitNetworkAccessPolicies/read"
	ActJITWrite    = "Microsoft.Security/locations/jitNetworkAccessPolicies/write"
	ActJITDelete   = "Microsoft.Security/locations/jitNetworkAccessPolicies/delete"
	ActJITInitiate = "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action"
	ActVMRead      = "Microsoft.Compute/virtualMachines/read"
	ActVMWrite     = "Microsoft.Compute/virtualMachines/write"
	ActNICRead     = "Microsoft.Network/networkInterfaces/read"
	ActPublicIPRd  = "Microsoft.Network/publicIPAddresses/read"
	ActNSGRead     = "Microsoft.Network/networkSecurityGroups/read"
	ActNSGWrite    = "Microsoft.Network/networkSecurityGroups/write"
	ActNICWrite    = "Microsoft.Network/networkInterfaces/write"
	ActAssessRead  = "Microsoft.Security/assessments/read"
	ActRoleDefRead = "Microsoft.Authorization/roleDefinitions/read"
	ActRoleAsgRead = "Microsoft.Authorization/roleAssignments/read"
	ActRoleDefWr   = "Microsoft.Authorization/roleDefinitions/write"
	ActRoleAsgWr   = "Microsoft.Authorization/roleAssignments/write"
	ActAuditRead   = "Microsoft.Insights/eventtypes/values/read"
)

// requirements maps each operation to what it needs. Why each one:
//   - policy.put, assess.fix: the seed's "configure or edit" row: JIT write
//     and VM write, both at the VM's subscription or resource group.
//   - policy.delete: removing protection is an edit of the VM's exposure, so
//     the same row with the delete action.
//   - initiate: the seed's "request" row, each action's concrete form
//     (".../jitNetworkAccessPolicies/*/read" is satisfied by reading the
//     policy, ".../networkInterfaces/*/read" by reading the VM's NIC).
//   - policy.get/list, grants.list: viewing JIT policies and status needs the
//     policy read. The seed's "read" row is a sufficient set, and Reader and
//     Security Reader, which the seed says can view them, hold this action.
//   - revoke: ending someone's grant early changes the VM's access, so it
//     needs the policy write; it never widens access so no VM write. (The
//     API lets the requester of a grant end their own without it.)
//   - approve: you may approve only access you could request yourself
//     (initiate and read the policy), so viewers such as Reader cannot; the
//     jit service additionally requires membership of the port's approver
//     group and that the approver is not the requester.
//   - token.admin: whoever can assign roles can already give any principal
//     anything, so minting tokens for others adds no power beyond it.
//   - audit.read: Azure's activity-log read.
func requirements() map[Operation][]Requirement {
	return map[Operation][]Requirement{
		OpPolicyPut:    {{ActJITWrite, AtResourceGroup}, {ActVMWrite, AtResourceGroup}},
		OpAssessFix:    {{ActJITWrite, AtResourceGroup}, {ActVMWrite, AtResourceGroup}},
		OpPolicyDelete: {{ActJITDelete, AtResourceGroup}, {ActVMWrite, AtResourceGroup}},
		OpPolicyGet:    {{ActJITRead, AtTarget}},
		OpPolicyList:   {{ActJITRead, AtTarget}},
		OpGrantsList:   {{ActJITRead, AtTarget}},
		OpInitiate: {
			{ActJITInitiate, AtTarget},
			{ActJITRead, AtTarget},
			{ActVMRead, AtTarget},
			{ActNICRead, AtTarget},
			{ActPublicIPRd, AtTarget},
		},
		OpRevoke:      {{ActJITWrite, AtResourceGroup}},
		OpApprove:     {{ActJITInitiate, AtTarget}, {ActJITRead, AtTarget}},
		OpVMList:      {{ActVMRead, AtTarget}},
		OpVMRead:      {{ActVMRead, AtTarget}},
		OpNetworkView: {{ActVMRead, AtTarget}, {ActNICRead, AtTarget}, {ActNSGRead, AtTarget}},
		OpInventory:   {{ActVMWrite, AtTarget}, {ActNICWrite, AtTarget}, {ActNSGWrite, AtTarget}},
		OpAssessRead:  {{ActAssessRead, AtTarget}},
		OpRoleRead:    {{ActRoleDefRead, AtTarget}, {ActRoleAsgRead, AtTarget}},
		OpRoleWrite:   {{ActRoleDefWr, AtTarget}, {ActRoleAsgWr, AtTarget}},
		OpAuditRead:   {{ActAuditRead, AtTarget}},
		OpTokenAdmin:  {{ActRoleAsgWr, AtTarget}},
	}
}

// Operations lists every operation, sorted.
func Operations() []Operation {
	ops := make([]Operation, 0, len(requirements()))
	for op := range requirements() {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i] < ops[j] })
	return ops
}

// ErrDenied is what AuthorizeOperation's errors wrap; the API maps it to 403.
var ErrDenied = errors.New("authorization denied")

// DeniedError says which operation was refused and the first requirement
// that failed.
type DeniedError struct {
	Operation Operation
	Target    resource.ID
	Decision  Decision
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("%s on %s: %s", e.Operation, e.Target, e.Decision.Reason)
}

func (e *DeniedError) Unwrap() error { return ErrDenied }

// AuthorizeOperation checks every requirement of op for principal against
// target (a VM ID, a policy ID, or a resource group, subscription or "/" for
// listings and administration). It returns nil if all pass, a *DeniedError
// (wrapping ErrDenied) naming the first that fails, or a plain error for an
// unknown operation or a missing target.
func (p *Policy) AuthorizeOperation(principal Principal, op Operation, target resource.ID) error {
	_, err := p.CheckOperation(principal, op, target)
	return err
}

// CheckOperation is AuthorizeOperation that also returns every decision
// taken (all granted ones when it succeeds), for audit records.
func (p *Policy) CheckOperation(principal Principal, op Operation, target resource.ID) ([]Decision, error) {
	reqs, ok := requirements()[op]
	if !ok {
		return nil, fmt.Errorf("operation %q: unknown operation", op)
	}
	if target.IsZero() {
		return nil, fmt.Errorf("operation %q: target: no resource ID given", op)
	}
	var ds []Decision
	for _, r := range reqs {
		d := p.Authorize(principal, r.Action, r.Scope.resolve(target))
		ds = append(ds, d)
		if !d.Allowed {
			return ds, &DeniedError{Operation: op, Target: target, Decision: d}
		}
	}
	return ds, nil
}
