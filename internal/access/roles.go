package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/resource"
	"github.com/drawbridge/drawbridge/internal/store"
)

// loadPolicyState reads the stored custom roles and role assignments.
func loadPolicyState(ctx context.Context, o store.Objects) ([]rbac.RoleDefinition, []rbac.Assignment, error) {
	var roles []rbac.RoleDefinition
	err := o.ListObjects(ctx, KindRole, func(key string, body []byte) error {
		var r rbac.RoleDefinition
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("role %s: %w", key, err)
		}
		roles = append(roles, r)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var as []rbac.Assignment
	err = o.ListObjects(ctx, KindAssignment, func(key string, body []byte) error {
		var a assignmentJSON
		if err := json.Unmarshal(body, &a); err != nil {
			return fmt.Errorf("assignment %s: %w", key, err)
		}
		ra, err := a.assignment()
		if err != nil {
			return fmt.Errorf("assignment %s: %w", key, err)
		}
		as = append(as, ra)
		return nil
	})
	return roles, as, err
}

// assignmentJSON is an assignment as stored and sent (scope as text).
type assignmentJSON struct {
	ID            string             `json:"id"`
	Role          string             `json:"roleDefinitionName"`
	Principal     string             `json:"principalName"`
	PrincipalType rbac.PrincipalType `json:"principalType"`
	Scope         string             `json:"scope"`
}

func (a assignmentJSON) assignment() (rbac.Assignment, error) {
	scope, err := resource.Parse(a.Scope)
	if err != nil {
		return rbac.Assignment{}, jit.NewFieldError(jit.ErrInvalid, "scope", "%v", err)
	}
	return rbac.Assignment{ID: a.ID, Role: a.Role, Principal: a.Principal, PrincipalType: a.PrincipalType, Scope: scope}, nil
}

func toJSON(a rbac.Assignment) assignmentJSON {
	return assignmentJSON{ID: a.ID, Role: a.Role, Principal: a.Principal, PrincipalType: a.PrincipalType, Scope: a.Scope.String()}
}

// Policy returns the authorization policy: built-in roles plus stored
// roles and assignments. It is cached; local changes rebuild it at once.
func (s *Store) Policy(ctx context.Context) (*rbac.Policy, error) {
	s.mu.Lock()
	if s.cached != nil && s.built == s.gen && s.now().Sub(s.at) < policyTTL {
		p := s.cached
		s.mu.Unlock()
		return p, nil
	}
	gen := s.gen
	s.mu.Unlock()
	var p *rbac.Policy
	err := s.st.ObjectReadTx(ctx, func(o store.Objects) error {
		roles, as, err := loadPolicyState(ctx, o)
		if err != nil {
			return err
		}
		p, err = rbac.NewPolicy(roles, as)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cached, s.built, s.at = p, gen, s.now()
	s.mu.Unlock()
	return p, nil
}

// AuthorizeOperation implements the API's Authorizer.
func (s *Store) AuthorizeOperation(p rbac.Principal, op rbac.Operation, target resource.ID) error {
	pol, err := s.Policy(context.Background())
	if err != nil {
		return fmt.Errorf("loading roles: %w", err)
	}
	return pol.AuthorizeOperation(p, op, target)
}

// CreateRole stores a custom role definition (validated, and checked
// against the built-in and stored roles for name and ID clashes).
func (s *Store) CreateRole(ctx context.Context, actor jit.Actor, r rbac.RoleDefinition) (rbac.RoleDefinition, error) {
	if err := r.Validate(); err != nil {
		return r, jit.NewFieldError(jit.ErrInvalid, "", "%v", err)
	}
	r.IsCustom = true
	if r.ID == "" {
		r.ID = newUUID()
	}
	err := s.st.ObjectTx(ctx, func(o store.Objects) error {
		roles, as, err := loadPolicyState(ctx, o)
		if err != nil {
			return err
		}
		if _, err := rbac.NewPolicy(append(roles, r), as); err != nil {
			return jit.NewFieldError(jit.ErrConflict, "Name", "%v", err)
		}
		if err := o.PutObject(ctx, KindRole, strings.ToLower(r.Name), r); err != nil {
			return err
		}
		return s.appendRecord(ctx, o, actor, OpRoleCreate, "/", "role "+r.Name, nil, r)
	})
	if err == nil {
		s.changed()
	}
	return r, err
}

// Assign stores a role assignment after checking it against the roles.
func (s *Store) Assign(ctx context.Context, actor jit.Actor, a rbac.Assignment) (rbac.Assignment, error) {
	if err := a.Validate(); err != nil {
		return a, jit.NewFieldError(jit.ErrInvalid, fieldOf(err), "%v", err)
	}
	if a.ID == "" {
		a.ID = newUUID()
	}
	out, err := objectTx(ctx, s.st, func(o store.Objects) (rbac.Assignment, error) {
		a := a // each run starts from the caller's value
		roles, as, err := loadPolicyState(ctx, o)
		if err != nil {
			return a, err
		}
		pol, err := rbac.NewPolicy(roles, append(slices.Clip(as), a))
		if err != nil {
			msg := err.Error()
			field := "roleDefinitionName"
			if strings.Contains(msg, "scope:") {
				field = "scope"
			}
			return a, jit.NewFieldError(jit.ErrInvalid, field, "%s", msg)
		}
		// The canonical spelling (a role may be named by its ID), before
		// comparing with the stored assignments, which have it.
		a.Role = pol.Role(a.Role).Name
		for _, have := range as {
			if strings.EqualFold(have.Role, a.Role) && strings.EqualFold(have.Principal, a.Principal) && have.PrincipalType == a.PrincipalType && have.Scope.Equal(a.Scope) {
				return a, jit.NewFieldError(jit.ErrConflict, "", "%s already exists (assignment %s)", a, have.ID)
			}
		}
		if err := o.PutObject(ctx, KindAssignment, a.ID, toJSON(a)); err != nil {
			return a, err
		}
		return a, s.appendRecord(ctx, o, actor, OpRoleAssign, a.Scope.String(), a.String(), nil, toJSON(a))
	})
	if err == nil {
		s.changed()
		a = out
	}
	return a, err
}

// GetAssignment returns one assignment.
func (s *Store) GetAssignment(ctx context.Context, id string) (rbac.Assignment, error) {
	var a assignmentJSON
	err := s.st.ObjectReadTx(ctx, func(o store.Objects) error { return o.GetObject(ctx, KindAssignment, id, &a) })
	if errors.Is(err, store.ErrNotFound) {
		return rbac.Assignment{}, jit.NewFieldError(jit.ErrNotFound, "id", "no role assignment with ID %q", id)
	} else if err != nil {
		return rbac.Assignment{}, err
	}
	return a.assignment()
}

// Unassign deletes an assignment, audited.
func (s *Store) Unassign(ctx context.Context, actor jit.Actor, id string) error {
	err := s.st.ObjectTx(ctx, func(o store.Objects) error {
		var a assignmentJSON
		if err := o.GetObject(ctx, KindAssignment, id, &a); errors.Is(err, store.ErrNotFound) {
			return jit.NewFieldError(jit.ErrNotFound, "id", "no role assignment with ID %q", id)
		} else if err != nil {
			return err
		}
		if err := o.DeleteObject(ctx, KindAssignment, id); err != nil {
			return err
		}
		return s.appendRecord(ctx, o, actor, OpRoleUnassign, a.Scope, "assignment "+id, a, nil)
	})
	if err == nil {
		s.changed()
	}
	return err
}

// Roles returns built-in and custom roles; Assignments every assignment.
func (s *Store) Roles(ctx context.Context) ([]rbac.RoleDefinition, error) {
	p, err := s.Policy(ctx)
	if err != nil {
		return nil, err
	}
	return p.Roles(), nil
}

// Assignments returns every stored assignment, by ID.
func (s *Store) Assignments(ctx context.Context) ([]rbac.Assignment, error) {
	var as []rbac.Assignment
	err := s.st.ObjectReadTx(ctx, func(o store.Objects) error {
		var err error
		_, as, err = loadPolicyState(ctx, o)
		return err
	})
	return as, err
}
