package rbac_test

import (
	"fmt"

	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// How the API layer uses the package: build a Policy from the stored custom
// roles and assignments, then check each operation against its target.
func ExamplePolicy_AuthorizeOperation() {
	custom, err := rbac.ParseRoleDefinition([]byte(`{
		"Name": "VM Operator",
		"Actions": ["Microsoft.Compute/virtualMachines/*"],
		"NotActions": ["Microsoft.Compute/virtualMachines/delete"],
		"AssignableScopes": ["/subscriptions/s1"]
	}`))
	if err != nil {
		panic(err)
	}
	pol, err := rbac.NewPolicy([]rbac.RoleDefinition{custom}, []rbac.Assignment{
		{Role: rbac.RoleJITRequester, Principal: "devs", PrincipalType: rbac.PrincipalGroup, Scope: resource.MustParse("/subscriptions/s1/resourceGroups/rg1")},
	})
	if err != nil {
		panic(err)
	}
	alice := rbac.Principal{Name: "alice", Groups: []string{"devs"}}
	vm := resource.MustParse("/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1")
	fmt.Println(pol.AuthorizeOperation(alice, rbac.OpInitiate, vm))
	fmt.Println(pol.AuthorizeOperation(alice, rbac.OpPolicyPut, vm))
	// Output:
	// <nil>
	// policy.put on /subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1: no role assignment of "alice" or its groups grants Microsoft.Security/locations/jitNetworkAccessPolicies/write at /subscriptions/s1/resourceGroups/rg1
}
