package rbac

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/drawbridge/drawbridge/internal/resource"
)

// RoleDefinition is a role in Azure's shape: the actions it grants
// (Actions minus NotActions) and the scopes it may be assigned at.
type RoleDefinition struct {
	Name             string
	ID               string
	IsCustom         bool
	Description      string
	Actions          []string
	NotActions       []string
	AssignableScopes []resource.ID
}

// Allows reports whether the role grants the concrete action: some Action
// pattern matches it and no NotAction pattern does. NotActions only subtract
// from this role; another role may still grant the action (Azure semantics).
func (r RoleDefinition) Allows(action string) bool {
	granted := false
	for _, a := range r.Actions {
		if MatchAction(a, action) {
			granted = true
			break
		}
	}
	if !granted {
		return false
	}
	for _, n := range r.NotActions {
		if MatchAction(n, action) {
			return false
		}
	}
	return true
}

// excludedBy returns the NotAction that removes action from an otherwise
// granting role, or "" — used to explain denials.
func (r RoleDefinition) excludedBy(action string) string {
	for _, a := range r.Actions {
		if MatchAction(a, action) {
			for _, n := range r.NotActions {
				if MatchAction(n, action) {
					return n
				}
			}
			return ""
		}
	}
	return ""
}

// AssignableAt reports whether the role may be assigned at scope.
func (r RoleDefinition) AssignableAt(scope resource.ID) bool {
	for _, s := range r.AssignableScopes {
		if s.Contains(scope) {
			return true
		}
	}
	return false
}

// Validate checks the definition, naming the field and the reason.
func (r RoleDefinition) Validate() error {
	if strings.TrimSpace(r.Name) == "" {
		return errors.New("Name: must not be empty")
	}
	if len(r.Name) > 256 {
		return errors.New("Name: longer than 256 characters")
	}
	if len(r.Actions) == 0 {
		return fmt.Errorf("Actions: role %q grants no actions", r.Name)
	}
	for i, a := range r.Actions {
		if err := ValidatePattern(a); err != nil {
			return fmt.Errorf("Actions[%d]: %w", i, err)
		}
	}
	for i, a := range r.NotActions {
		if err := ValidatePattern(a); err != nil {
			return fmt.Errorf("NotActions[%d]: %w", i, err)
		}
	}
	if len(r.AssignableScopes) == 0 {
		return fmt.Errorf("AssignableScopes: role %q must name at least one scope (\"/\" for everywhere)", r.Name)
	}
	for i, s := range r.AssignableScopes {
		if s.IsZero() {
			return fmt.Errorf("AssignableScopes[%d]: empty scope", i)
		}
	}
	return nil
}

// roleJSON is Azure PowerShell's shape (Get-AzRoleDefinition | ConvertTo-Json),
// also what `drawbridge role get` prints.
type roleJSON struct {
	Name             string   `json:"Name"`
	ID               string   `json:"Id,omitempty"`
	IsCustom         bool     `json:"IsCustom"`
	Description      string   `json:"Description,omitempty"`
	Actions          []string `json:"Actions"`
	NotActions       []string `json:"NotActions"`
	DataActions      []string `json:"DataActions,omitempty"`
	NotDataActions   []string `json:"NotDataActions,omitempty"`
	AssignableScopes []string `json:"AssignableScopes"`
}

// cliRoleJSON is Azure CLI's shape (az role definition show). Note that
// there "name" is the GUID and "roleName" the display name.
type cliRoleJSON struct {
	ID               string          `json:"id"`
	Name             string          `json:"name"`
	RoleName         string          `json:"roleName"`
	RoleType         string          `json:"roleType"`
	Type             string          `json:"type"`
	Description      string          `json:"description"`
	Permissions      []cliPermission `json:"permissions"`
	AssignableScopes []string        `json:"assignableScopes"`
	CreatedOn        any             `json:"createdOn"`
	UpdatedOn        any             `json:"updatedOn"`
	CreatedBy        any             `json:"createdBy"`
	UpdatedBy        any             `json:"updatedBy"`
}

type cliPermission struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
	Condition      any      `json:"condition"`
	ConditionVer   any      `json:"conditionVersion"`
}

// ParseRoleDefinition parses one role definition in Azure PowerShell's JSON
// shape (Name, Id, IsCustom, Description, Actions, NotActions,
// AssignableScopes) or Azure CLI's (roleName, permissions[{actions,
// notActions}], assignableScopes), and validates it. Unknown fields are
// rejected so that a misspelt "NotAction" cannot silently widen a role.
// Data actions are rejected: drawbridge has no data plane to grant.
func ParseRoleDefinition(data []byte) (RoleDefinition, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return RoleDefinition{}, fmt.Errorf("role definition: want one JSON object: %w", err)
	}
	cli := false
	for k := range keys {
		if strings.EqualFold(k, "roleName") || strings.EqualFold(k, "permissions") {
			cli = true
		}
	}
	var r RoleDefinition
	var scopes []string
	if cli {
		var c cliRoleJSON
		if err := strictUnmarshal(data, &c); err != nil {
			return RoleDefinition{}, err
		}
		r = RoleDefinition{Name: c.RoleName, ID: c.Name, Description: c.Description,
			IsCustom: c.RoleType == "" || strings.EqualFold(c.RoleType, "CustomRole")}
		if r.ID == "" {
			r.ID = c.ID
		}
		for i, p := range c.Permissions {
			if len(p.DataActions) > 0 || len(p.NotDataActions) > 0 {
				return RoleDefinition{}, fmt.Errorf("permissions[%d].dataActions: data actions are not supported", i)
			}
			if p.Condition != nil {
				return RoleDefinition{}, fmt.Errorf("permissions[%d].condition: conditions are not supported", i)
			}
			r.Actions = append(r.Actions, p.Actions...)
			r.NotActions = append(r.NotActions, p.NotActions...)
		}
		scopes = c.AssignableScopes
	} else {
		var j roleJSON
		if err := strictUnmarshal(data, &j); err != nil {
			return RoleDefinition{}, err
		}
		if len(j.DataActions) > 0 || len(j.NotDataActions) > 0 {
			return RoleDefinition{}, errors.New("DataActions: data actions are not supported")
		}
		r = RoleDefinition{Name: j.Name, ID: j.ID, IsCustom: j.IsCustom, Description: j.Description,
			Actions: j.Actions, NotActions: j.NotActions}
		scopes = j.AssignableScopes
	}
	for i, s := range scopes {
		id, err := resource.Parse(s)
		if err != nil {
			return RoleDefinition{}, fmt.Errorf("AssignableScopes[%d]: %w", i, err)
		}
		r.AssignableScopes = append(r.AssignableScopes, id)
	}
	if err := r.Validate(); err != nil {
		return RoleDefinition{}, err
	}
	return r, nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	// Trailing data was already refused by the json.Unmarshal that detected the shape.
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("role definition: %w", err)
	}
	return nil
}

// MarshalJSON writes Azure PowerShell's shape, which ParseRoleDefinition reads back.
func (r RoleDefinition) MarshalJSON() ([]byte, error) {
	j := roleJSON{Name: r.Name, ID: r.ID, IsCustom: r.IsCustom, Description: r.Description,
		Actions: nonNil(r.Actions), NotActions: nonNil(r.NotActions), AssignableScopes: []string{}}
	for _, s := range r.AssignableScopes {
		j.AssignableScopes = append(j.AssignableScopes, s.String())
	}
	return json.Marshal(j)
}

// UnmarshalJSON is ParseRoleDefinition, so roles embedded in larger
// documents are validated too.
func (r *RoleDefinition) UnmarshalJSON(data []byte) error {
	p, err := ParseRoleDefinition(data)
	if err != nil {
		return err
	}
	*r = p
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
