// Package rbac owns authorization in Azure RBAC's model with Microsoft
// Defender for Cloud's action names: action strings and wildcard matching,
// role definitions (Actions minus NotActions, AssignableScopes) in Azure's
// JSON shape, the built-in roles, role assignments to a principal or a group
// at a scope (inherited by everything below it), the deny-by-default
// Authorize decision, and the drawbridge API operations with the actions
// each one requires (the seed's permission table).
//
// The package is pure: it holds no state beyond what a Policy is built from
// and never reads the clock or does I/O. Callers load roles and assignments
// from the store, build a Policy with NewPolicy, and ask it.
package rbac

import (
	"errors"
	"fmt"
	"strings"

	"github.com/drawbridge/drawbridge/internal/resource"
)

// Principal is an authenticated caller: its name (a user, service or agent
// name, or an OIDC subject) and the groups it belongs to.
type Principal struct {
	Name   string
	Groups []string
}

// PrincipalType says whether an assignment names a user or a group.
type PrincipalType string

const (
	PrincipalUser  PrincipalType = "User"
	PrincipalGroup PrincipalType = "Group"
)

// Assignment gives a role to a principal or group at a scope; it applies to
// the scope and everything below it.
type Assignment struct {
	ID            string        `json:"id,omitempty"`
	Role          string        `json:"roleDefinitionName"` // role Name or ID
	Principal     string        `json:"principalName"`
	PrincipalType PrincipalType `json:"principalType"`
	Scope         resource.ID   `json:"scope"`
}

// Validate checks an assignment on its own (not against roles).
func (a Assignment) Validate() error {
	if strings.TrimSpace(a.Role) == "" {
		return errors.New("roleDefinitionName: must not be empty")
	}
	if strings.TrimSpace(a.Principal) == "" {
		return errors.New("principalName: must not be empty")
	}
	if a.PrincipalType != PrincipalUser && a.PrincipalType != PrincipalGroup {
		return fmt.Errorf("principalType: must be %q or %q, not %q", PrincipalUser, PrincipalGroup, a.PrincipalType)
	}
	if a.Scope.IsZero() {
		return errors.New("scope: must be a resource ID or \"/\"")
	}
	return nil
}

// appliesTo compares names case-insensitively, as Azure compares principal
// and group object IDs; drawbridge names come from tokens and OIDC claims
// whose case users do not control consistently.
func (a Assignment) appliesTo(p Principal) bool {
	switch a.PrincipalType {
	case PrincipalUser:
		return p.Name != "" && strings.EqualFold(a.Principal, p.Name)
	case PrincipalGroup:
		for _, g := range p.Groups {
			if g != "" && strings.EqualFold(a.Principal, g) {
				return true
			}
		}
	}
	return false
}

func (a Assignment) String() string {
	return fmt.Sprintf("%s %q has %q at %s", strings.ToLower(string(a.PrincipalType)), a.Principal, a.Role, a.Scope)
}

// Policy is an immutable set of roles and assignments that answers
// authorization questions. Build one per change of roles or assignments.
type Policy struct {
	roles       []RoleDefinition
	assignments []resolved
}

type resolved struct {
	Assignment
	role *RoleDefinition
}

// NewPolicy builds a policy from the built-in roles plus custom roles and the
// assignments. It fails if a custom role is invalid or reuses a name or ID, or
// an assignment names an unknown role or a scope the role is not assignable at.
func NewPolicy(custom []RoleDefinition, assignments []Assignment) (*Policy, error) {
	p := &Policy{roles: BuiltinRoles()}
	for i, r := range custom {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("role %d: %w", i, err)
		}
		for _, have := range p.roles {
			if strings.EqualFold(have.Name, r.Name) {
				return nil, fmt.Errorf("role %d: Name: %q is already defined", i, r.Name)
			}
			if r.ID != "" && strings.EqualFold(have.ID, r.ID) {
				return nil, fmt.Errorf("role %d: Id: %q is already used by role %q", i, r.ID, have.Name)
			}
		}
		p.roles = append(p.roles, r)
	}
	for i, a := range assignments {
		if err := a.Validate(); err != nil {
			return nil, fmt.Errorf("assignment %d: %w", i, err)
		}
		role := p.Role(a.Role)
		if role == nil {
			return nil, fmt.Errorf("assignment %d: roleDefinitionName: no role named %q", i, a.Role)
		}
		if !role.AssignableAt(a.Scope) {
			return nil, fmt.Errorf("assignment %d: scope: role %q is not assignable at %s", i, role.Name, a.Scope)
		}
		p.assignments = append(p.assignments, resolved{Assignment: a, role: role})
	}
	return p, nil
}

// Role returns the role with that Name or ID (case-insensitive), or nil.
func (p *Policy) Role(nameOrID string) *RoleDefinition {
	for i := range p.roles {
		r := &p.roles[i]
		if strings.EqualFold(r.Name, nameOrID) || (r.ID != "" && strings.EqualFold(r.ID, nameOrID)) {
			return r
		}
	}
	return nil
}

// Roles returns the policy's roles, built-in first.
func (p *Policy) Roles() []RoleDefinition { return append([]RoleDefinition(nil), p.roles...) }

// Decision is the answer to one authorization question.
type Decision struct {
	Allowed bool
	Action  string
	Scope   resource.ID
	// When allowed: the assignment (and its role) that granted the action.
	Assignment Assignment
	Role       string
	// When denied: why, in words fit for an error message.
	Reason string
}

func (d Decision) String() string {
	if d.Allowed {
		return fmt.Sprintf("allowed %s at %s: %s", d.Action, d.Scope, d.Assignment)
	}
	return fmt.Sprintf("denied %s at %s: %s", d.Action, d.Scope, d.Reason)
}

// Authorize decides whether principal may perform the concrete action at
// scope. It is deny by default: allowed only if an assignment to the
// principal (or one of its groups) at scope or above it has a role that
// grants the action. The first such assignment, in the order given to
// NewPolicy, is reported.
func (p *Policy) Authorize(principal Principal, action string, scope resource.ID) Decision {
	d := Decision{Action: action, Scope: scope}
	if err := ValidateAction(action); err != nil {
		d.Reason = err.Error()
		return d
	}
	if scope.IsZero() {
		d.Reason = "no scope given"
		return d
	}
	if principal.Name == "" && len(principal.Groups) == 0 {
		d.Reason = "no principal"
		return d
	}
	var outOfScope, excluded string
	for _, a := range p.assignments {
		if !a.appliesTo(principal) {
			continue
		}
		if !a.role.Allows(action) {
			if n := a.role.excludedBy(action); n != "" && excluded == "" {
				excluded = fmt.Sprintf("role %q excludes it by NotActions %q", a.role.Name, n)
			}
			continue
		}
		if !a.Scope.Contains(scope) {
			if outOfScope == "" {
				outOfScope = fmt.Sprintf("role %q grants it only at %s", a.role.Name, a.Scope)
			}
			continue
		}
		d.Allowed, d.Assignment, d.Role = true, a.Assignment, a.role.Name
		return d
	}
	d.Reason = fmt.Sprintf("no role assignment of %s grants %s at %s", describe(principal), action, scope)
	switch {
	case outOfScope != "":
		d.Reason += " (" + outOfScope + ")"
	case excluded != "":
		d.Reason += " (" + excluded + ")"
	}
	return d
}

func describe(p Principal) string {
	if len(p.Groups) == 0 {
		return fmt.Sprintf("%q", p.Name)
	}
	return fmt.Sprintf("%q or its groups", p.Name)
}
