package rbac

import (
	"errors"
	"testing"

	"github.com/drawbridge/drawbridge/internal/resource"
)

const (
	sub1    = "/subscriptions/s1"
	rg1     = "/subscriptions/s1/resourceGroups/rg1"
	rg2     = "/subscriptions/s1/resourceGroups/rg2"
	vm1     = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"
	policy1 = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"
)

// matrixTarget is where each operation is aimed in the matrix: VM-level
// operations at vm1 (policy reads and deletes at vm1's policy), listings and
// administration at rg1, token administration at "/".
var matrixTarget = map[Operation]string{
	OpPolicyPut:    vm1,
	OpPolicyGet:    policy1,
	OpPolicyList:   rg1,
	OpPolicyDelete: policy1,
	OpInitiate:     vm1,
	OpRevoke:       vm1,
	OpGrantsList:   vm1,
	OpVMList:       rg1,
	OpVMRead:       vm1,
	OpNetworkView:  vm1,
	OpInventory:    rg1,
	OpAssessRead:   vm1,
	OpAssessFix:    vm1,
	OpRoleRead:     rg1,
	OpRoleWrite:    rg1,
	OpAuditRead:    rg1,
	OpTokenAdmin:   "/",
	OpApprove:      vm1,
}

// TestMatrix: every built-in role × every operation × where the role is
// assigned. Each expectation is three letters, Y (allowed) or N (denied),
// for the role assigned to alice at "/" | at rg1 (in scope: the target's
// resource group) | at rg2 (out of scope: another resource group).
func TestMatrix(t *testing.T) {
	want := map[string]map[Operation]string{
		RoleOwner: {
			OpPolicyPut: "YYN", OpPolicyGet: "YYN", OpPolicyList: "YYN", OpPolicyDelete: "YYN",
			OpInitiate: "YYN", OpRevoke: "YYN", OpGrantsList: "YYN", OpVMList: "YYN",
			OpVMRead: "YYN", OpNetworkView: "YYN", OpInventory: "YYN", OpAssessRead: "YYN",
			OpAssessFix: "YYN", OpRoleRead: "YYN", OpRoleWrite: "YYN", OpAuditRead: "YYN",
			OpTokenAdmin: "YNN", OpApprove: "YYN",
		},
		RoleContributor: {
			OpPolicyPut: "YYN", OpPolicyGet: "YYN", OpPolicyList: "YYN", OpPolicyDelete: "YYN",
			OpInitiate: "YYN", OpRevoke: "YYN", OpGrantsList: "YYN", OpVMList: "YYN",
			OpVMRead: "YYN", OpNetworkView: "YYN", OpInventory: "YYN", OpAssessRead: "YYN",
			OpAssessFix: "YYN", OpRoleRead: "YYN", OpRoleWrite: "NNN", OpAuditRead: "YYN",
			OpTokenAdmin: "NNN", OpApprove: "YYN",
		},
		RoleReader: {
			OpPolicyPut: "NNN", OpPolicyGet: "YYN", OpPolicyList: "YYN", OpPolicyDelete: "NNN",
			OpInitiate: "NNN", OpRevoke: "NNN", OpGrantsList: "YYN", OpVMList: "YYN",
			OpVMRead: "YYN", OpNetworkView: "YYN", OpInventory: "NNN", OpAssessRead: "YYN",
			OpAssessFix: "NNN", OpRoleRead: "YYN", OpRoleWrite: "NNN", OpAuditRead: "YYN",
			OpTokenAdmin: "NNN", OpApprove: "NNN",
		},
		RoleSecurityRead: {
			OpPolicyPut: "NNN", OpPolicyGet: "YYN", OpPolicyList: "YYN", OpPolicyDelete: "NNN",
			OpInitiate: "NNN", OpRevoke: "NNN", OpGrantsList: "YYN", OpVMList: "NNN",
			OpVMRead: "NNN", OpNetworkView: "NNN", OpInventory: "NNN", OpAssessRead: "YYN",
			OpAssessFix: "NNN", OpRoleRead: "YYN", OpRoleWrite: "NNN", OpAuditRead: "NNN",
			OpTokenAdmin: "NNN", OpApprove: "NNN",
		},
		RoleSecurityAdmin: {
			OpPolicyPut: "NNN", OpPolicyGet: "YYN", OpPolicyList: "YYN", OpPolicyDelete: "NNN",
			OpInitiate: "NNN", OpRevoke: "YYN", OpGrantsList: "YYN", OpVMList: "NNN",
			OpVMRead: "NNN", OpNetworkView: "NNN", OpInventory: "NNN", OpAssessRead: "YYN",
			OpAssessFix: "NNN", OpRoleRead: "YYN", OpRoleWrite: "NNN", OpAuditRead: "NNN",
			OpTokenAdmin: "NNN", OpApprove: "YYN",
		},
		RoleJITRequester: {
			OpPolicyPut: "NNN", OpPolicyGet: "YYN", OpPolicyList: "YYN", OpPolicyDelete: "NNN",
			OpInitiate: "YYN", OpRevoke: "NNN", OpGrantsList: "YYN", OpVMList: "YYN",
			OpVMRead: "YYN", OpNetworkView: "NNN", OpInventory: "NNN", OpAssessRead: "NNN",
			OpAssessFix: "NNN", OpRoleRead: "NNN", OpRoleWrite: "NNN", OpAuditRead: "NNN",
			OpTokenAdmin: "NNN", OpApprove: "YYN",
		},
	}
	if len(want) != len(BuiltinRoles()) {
		t.Fatalf("matrix covers %d roles, there are %d built-in roles", len(want), len(BuiltinRoles()))
	}
	alice := Principal{Name: "alice"}
	where := []string{"/", rg1, rg2}
	for role, ops := range want {
		if len(ops) != len(Operations()) {
			t.Errorf("%s: matrix covers %d operations, there are %d", role, len(ops), len(Operations()))
		}
		for _, op := range Operations() {
			exp, ok := ops[op]
			if !ok {
				t.Errorf("%s: no expectation for %s", role, op)
				continue
			}
			for i, scope := range where {
				pol := mustPolicy(t, nil, Assignment{Role: role, Principal: "alice", PrincipalType: PrincipalUser, Scope: resource.MustParse(scope)})
				err := pol.AuthorizeOperation(alice, op, resource.MustParse(matrixTarget[op]))
				got := "Y"
				if err != nil {
					got = "N"
					if !errors.Is(err, ErrDenied) {
						t.Errorf("%s assigned at %s, %s: error %v does not wrap ErrDenied", role, scope, op, err)
					}
				}
				if got != exp[i:i+1] {
					t.Errorf("%s assigned at %s, %s on %s: got %s, want %s (err: %v)", role, scope, op, matrixTarget[op], got, exp[i:i+1], err)
				}
			}
		}
	}
}

func mustPolicy(t *testing.T, custom []RoleDefinition, as ...Assignment) *Policy {
	t.Helper()
	p, err := NewPolicy(custom, as)
	if err != nil {
		t.Fatalf("NewPolicy: %v", err)
	}
	return p
}
