package rbac

import "github.com/drawbridge/drawbridge/internal/resource"

// Names of the built-in roles. The first five carry Azure's names and IDs so
// that assignments exported from Azure mean the same thing here.
const (
	RoleOwner         = "Owner"
	RoleContributor   = "Contributor"
	RoleReader        = "Reader"
	RoleSecurityRead  = "Security Reader"
	RoleSecurityAdmin = "Security Admin"
	RoleJITRequester  = "JIT Network Access Requester"
)

// BuiltinRoles returns fresh copies of the built-in role definitions (the
// caller may modify them without affecting anyone else).
func BuiltinRoles() []RoleDefinition {
	root := func() []resource.ID { return []resource.ID{resource.Root} }
	return []RoleDefinition{
		{
			Name:             RoleOwner,
			ID:               "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
			Description:      "Grants full access to manage all resources, including the ability to assign roles.",
			Actions:          []string{"*"},
			AssignableScopes: root(),
		},
		{
			Name:        RoleContributor,
			ID:          "b24988ac-6180-42a0-ab88-20f7382dd24c",
			Description: "Grants full access to manage all resources, but does not allow you to assign roles.",
			Actions:     []string{"*"},
			NotActions: []string{
				"Microsoft.Authorization/*/Delete",
				"Microsoft.Authorization/*/Write",
				"Microsoft.Authorization/elevateAccess/Action",
			},
			AssignableScopes: root(),
		},
		{
			Name:             RoleReader,
			ID:               "acdd72a7-3385-48ef-bd42-f606fba81ae7",
			Description:      "View all resources, but does not allow you to make any changes.",
			Actions:          []string{"*/read"},
			AssignableScopes: root(),
		},
		{
			// Azure's Security Reader, less the IoT actions drawbridge has no use for.
			Name:        RoleSecurityRead,
			ID:          "39bc4728-0917-49c7-9d2c-d95423bc2eb4",
			Description: "View permissions for Microsoft Defender for Cloud: recommendations, alerts, security policy and JIT status, but not changes.",
			Actions: []string{
				"Microsoft.Authorization/*/read",
				"Microsoft.Insights/alertRules/read",
				"Microsoft.Management/managementGroups/read",
				"Microsoft.Resources/deployments/*/read",
				"Microsoft.Resources/subscriptions/resourceGroups/read",
				"Microsoft.Security/*/read",
				"Microsoft.Support/*/read",
			},
			AssignableScopes: root(),
		},
		{
			// Azure's Security Admin, less the IoT actions.
			Name:        RoleSecurityAdmin,
			ID:          "fb1c8493-542b-48eb-b624-b4c8fea62acd",
			Description: "View and update permissions for Microsoft Defender for Cloud: security policy, alerts and recommendations.",
			Actions: []string{
				"Microsoft.Authorization/*/read",
				"Microsoft.Authorization/policyAssignments/*",
				"Microsoft.Authorization/policyDefinitions/*",
				"Microsoft.Insights/alertRules/*",
				"Microsoft.Management/managementGroups/read",
				"Microsoft.Resources/deployments/*",
				"Microsoft.Resources/subscriptions/resourceGroups/read",
				"Microsoft.Security/*",
				"Microsoft.Support/*",
			},
			AssignableScopes: root(),
		},
		{
			// Exactly the seed's "Request JIT access to a VM" row, as the
			// Set-JitLeastPrivilegedRole script creates it.
			Name:        RoleJITRequester,
			ID:          "0b3c1c4e-7a59-4d4e-9d26-6a0f4c1e2b71",
			IsCustom:    true,
			Description: "Least-privileged role to request just-in-time access to a VM, and nothing else.",
			Actions: []string{
				"Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
				"Microsoft.Security/locations/jitNetworkAccessPolicies/*/read",
				"Microsoft.Compute/virtualMachines/read",
				"Microsoft.Network/networkInterfaces/*/read",
				"Microsoft.Network/publicIPAddresses/read",
			},
			AssignableScopes: root(),
		},
	}
}
