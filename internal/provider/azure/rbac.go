package azure

import (
	"encoding/json"
	"slices"
)

// RequiredActions are the Azure RBAC actions drawbridge's own identity
// needs, and no more: reading the VMs and the network in front of them
// (discovery and every Apply), creating, reading back and deleting
// individual NSG security rules, and writing a classic Azure Firewall's
// NAT rule collections (grants behind a firewall). TestRequiredActionsAreExactlyTheCallsMade derives them
// from every call the provider and discovery make against the wire
// simulator, so this list cannot drift from the code.
var RequiredActions = []string{
	"Microsoft.Compute/virtualMachines/read",
	"Microsoft.Network/azureFirewalls/read",
	"Microsoft.Network/azureFirewalls/write", // classic DNAT rules of grants behind a firewall
	"Microsoft.Network/networkInterfaces/read",
	"Microsoft.Network/networkSecurityGroups/read",
	"Microsoft.Network/networkSecurityGroups/securityRules/delete",
	"Microsoft.Network/networkSecurityGroups/securityRules/read", // the SDK's final GET after a create
	"Microsoft.Network/networkSecurityGroups/securityRules/write",
	"Microsoft.Network/publicIPAddresses/read",
	"Microsoft.Network/virtualNetworks/read",
	"Microsoft.Network/virtualNetworks/subnets/read",
}

// RoleDefinition is a custom role granting RequiredActions on the given
// scopes, in the shape `az role definition create --role-definition` reads.
type RoleDefinition struct {
	Name             string   `json:"Name"`
	IsCustom         bool     `json:"IsCustom"`
	Description      string   `json:"Description"`
	Actions          []string `json:"Actions"`
	NotActions       []string `json:"NotActions"`
	AssignableScopes []string `json:"AssignableScopes"`
}

// CustomRole returns the least-privilege custom role for drawbridge.
func CustomRole(scopes ...string) RoleDefinition {
	return RoleDefinition{
		Name:     "drawbridge JIT",
		IsCustom: true,
		Description: "Lets drawbridge discover VMs and their network, create and delete its own " +
			"just-in-time NSG security rules (named drawbridge-jit-*), and write classic Azure Firewalls, " +
			"of which drawbridge changes only its own NAT rule collection (drawbridge-jit). It cannot delete anything else.",
		Actions:          slices.Clone(RequiredActions),
		NotActions:       []string{},
		AssignableScopes: scopes,
	}
}

// JSON is the role as indented JSON.
func (r RoleDefinition) JSON() []byte {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}
