package rbac

import (
	"fmt"
	"strings"
)

// Action strings follow Azure's shape: {Namespace}/{resourceType}[/{subType}...]/{verb},
// where verb is read, write, delete or action, e.g.
// "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action".
// Patterns may use "*":
//
//   - "*" on its own matches every action;
//   - a whole segment "*" matches zero or more whole segments, so
//     "Microsoft.Network/*/read" matches "Microsoft.Network/networkInterfaces/ipConfigurations/read"
//     and "Microsoft.Security/locations/jitNetworkAccessPolicies/*/read" matches
//     ".../jitNetworkAccessPolicies/read". Zero segments is allowed because the
//     seed's least-privileged request role holds only ".../jitNetworkAccessPolicies/*/read"
//     and must still be able to read the policy it requests against;
//   - a "*" inside a segment ("jit*") matches any characters within that segment.
//
// Matching is case-insensitive, as Azure's is.

// isVerb reports whether s (lower-cased) is a verb an action may end in.
func isVerb(s string) bool {
	switch s {
	case "read", "write", "delete", "action":
		return true
	}
	return false
}

// knownActions is the catalogue of concrete actions drawbridge knows: the
// seed's actions, the ones its operations check, and the ones the built-in
// roles name. A literal action outside it, or a pattern that matches none of
// it, is "unknown" — that is how typos such as "Microsoft.Secruity/*" are
// caught when a role is defined rather than silently granting nothing.
// It is a function, not a variable, so that nothing can modify the catalogue.
func knownActions() []string {
	return []string{
		// Microsoft Defender for Cloud (seed table and JIT operations).
		"Microsoft.Security/locations/jitNetworkAccessPolicies/read",
		"Microsoft.Security/locations/jitNetworkAccessPolicies/write",
		"Microsoft.Security/locations/jitNetworkAccessPolicies/delete",
		"Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
		"Microsoft.Security/policies/read",
		"Microsoft.Security/policies/write",
		"Microsoft.Security/pricings/read",
		"Microsoft.Security/pricings/write",
		"Microsoft.Security/assessments/read",
		"Microsoft.Security/assessments/write",
		"Microsoft.Security/alerts/read",
		"Microsoft.Security/securityStatuses/read",
		"Microsoft.Security/locations/read",
		// Compute.
		"Microsoft.Compute/virtualMachines/read",
		"Microsoft.Compute/virtualMachines/write",
		"Microsoft.Compute/virtualMachines/delete",
		"Microsoft.Compute/virtualMachines/start/action",
		// Network.
		"Microsoft.Network/networkInterfaces/read",
		"Microsoft.Network/networkInterfaces/write",
		"Microsoft.Network/networkInterfaces/delete",
		"Microsoft.Network/networkInterfaces/ipConfigurations/read",
		"Microsoft.Network/networkInterfaces/effectiveNetworkSecurityGroups/action",
		"Microsoft.Network/publicIPAddresses/read",
		"Microsoft.Network/publicIPAddresses/write",
		"Microsoft.Network/networkSecurityGroups/read",
		"Microsoft.Network/networkSecurityGroups/write",
		"Microsoft.Network/networkSecurityGroups/delete",
		"Microsoft.Network/networkSecurityGroups/securityRules/read",
		"Microsoft.Network/networkSecurityGroups/securityRules/write",
		"Microsoft.Network/networkSecurityGroups/securityRules/delete",
		"Microsoft.Network/virtualNetworks/read",
		"Microsoft.Network/virtualNetworks/write",
		"Microsoft.Network/virtualNetworks/subnets/read",
		"Microsoft.Network/azureFirewalls/read",
		"Microsoft.Network/azureFirewalls/write",
		// Authorization (roles, assignments) and elevation.
		"Microsoft.Authorization/roleDefinitions/read",
		"Microsoft.Authorization/roleDefinitions/write",
		"Microsoft.Authorization/roleDefinitions/delete",
		"Microsoft.Authorization/roleAssignments/read",
		"Microsoft.Authorization/roleAssignments/write",
		"Microsoft.Authorization/roleAssignments/delete",
		"Microsoft.Authorization/policyAssignments/read",
		"Microsoft.Authorization/policyAssignments/write",
		"Microsoft.Authorization/policyDefinitions/read",
		"Microsoft.Authorization/policyDefinitions/write",
		"Microsoft.Authorization/elevateAccess/Action",
		// Activity log (drawbridge's audit log).
		"Microsoft.Insights/eventtypes/values/read",
		"Microsoft.Insights/alertRules/read",
		"Microsoft.Insights/alertRules/write",
		// Resource manager.
		"Microsoft.Resources/subscriptions/read",
		"Microsoft.Resources/subscriptions/resourceGroups/read",
		"Microsoft.Resources/deployments/read",
		"Microsoft.Resources/deployments/write",
		"Microsoft.Management/managementGroups/read",
		"Microsoft.Support/supportTickets/read",
		"Microsoft.Support/supportTickets/write",
	}
}

// ValidateAction checks that s is a well-formed, known concrete action (no
// wildcards): the kind of string Authorize is asked about.
func ValidateAction(s string) error {
	if strings.Contains(s, "*") {
		return fmt.Errorf("action %q: a checked action must not contain wildcards", s)
	}
	if err := checkSyntax(s); err != nil {
		return err
	}
	if !isKnown(s) {
		return fmt.Errorf("action %q: unknown action", s)
	}
	return nil
}

// ValidatePattern checks that s is a well-formed action pattern (as found in
// a role's Actions or NotActions) and that it matches at least one known action.
func ValidatePattern(s string) error {
	if err := checkSyntax(s); err != nil {
		return err
	}
	if !strings.Contains(s, "*") {
		if !isKnown(s) {
			return fmt.Errorf("action %q: unknown action", s)
		}
		return nil
	}
	for _, k := range knownActions() {
		if MatchAction(s, k) {
			return nil
		}
	}
	return fmt.Errorf("action %q: the pattern matches no known action", s)
}

func isKnown(s string) bool {
	for _, k := range knownActions() {
		if strings.EqualFold(k, s) {
			return true
		}
	}
	return false
}

// checkSyntax checks the shape of an action or pattern, not whether it is known.
func checkSyntax(s string) error {
	if s == "" {
		return fmt.Errorf("action is empty")
	}
	if s == "*" {
		return nil
	}
	if len(s) > maxActionLen {
		return fmt.Errorf("action %.40q...: longer than %d characters", s, maxActionLen)
	}
	segs := strings.Split(s, "/")
	for i, seg := range segs {
		if seg == "" {
			return fmt.Errorf("action %q: segment %d is empty", s, i+1)
		}
		for _, r := range seg {
			ok := r == '.' || r == '-' || r == '_' || r == '*' ||
				(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
			if !ok {
				return fmt.Errorf("action %q: segment %q has invalid character %q", s, seg, r)
			}
		}
		if strings.Contains(seg, "**") {
			return fmt.Errorf("action %q: segment %q has a repeated wildcard", s, seg)
		}
	}
	if len(segs) < 2 {
		return fmt.Errorf("action %q: want {Namespace}/{resourceType}/{verb}", s)
	}
	last := segs[len(segs)-1]
	if !strings.Contains(last, "*") && !isVerb(strings.ToLower(last)) {
		return fmt.Errorf("action %q: must end in read, write, delete, action or a wildcard, not %q", s, last)
	}
	if !strings.Contains(s, "*") && len(segs) < 3 {
		return fmt.Errorf("action %q: want {Namespace}/{resourceType}/{verb}", s)
	}
	return nil
}

// maxActionLen bounds action strings; no real action comes near it.
const maxActionLen = 512

// MatchAction reports whether pattern (which may contain wildcards) matches
// the concrete action, case-insensitively. It never panics, and runs in time
// proportional to (pattern segments × action segments); strings longer than
// 512 bytes never match, which bounds that cost.
func MatchAction(pattern, action string) bool {
	if len(pattern) > maxActionLen || len(action) > maxActionLen {
		return false
	}
	if pattern == "*" {
		return action != ""
	}
	p := strings.Split(strings.ToLower(pattern), "/")
	a := strings.Split(strings.ToLower(action), "/")
	// next[j] / cur[j]: p[i+1:] / p[i:] matches a[j:]. Rows are filled from
	// the end so each cell is computed once (no exponential backtracking on
	// many "*" segments).
	next := make([]bool, len(a)+1)
	cur := make([]bool, len(a)+1)
	next[len(a)] = true
	for i := len(p) - 1; i >= 0; i-- {
		for j := len(a); j >= 0; j-- {
			if p[i] == "*" {
				// Zero segments, or consume a[j] and stay on this "*".
				cur[j] = next[j] || (j < len(a) && cur[j+1])
				continue
			}
			cur[j] = j < len(a) && matchSegment(p[i], a[j]) && next[j+1]
		}
		next, cur = cur, next
	}
	return next[0]
}

// matchSegment matches one segment with "*" standing for any run of
// characters within it. Both arguments are already lower-cased.
func matchSegment(p, s string) bool {
	if !strings.Contains(p, "*") {
		return p == s
	}
	parts := strings.Split(p, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		k := strings.Index(s, mid)
		if k < 0 {
			return false
		}
		s = s[k+len(mid):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}
