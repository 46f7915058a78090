package rbac

import (
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/resource"
)

func TestAuthorizeDenyByDefault(t *testing.T) {
	pol := mustPolicy(t, nil)
	d := pol.Authorize(Principal{Name: "alice"}, ActVMRead, resource.MustParse(vm1))
	if d.Allowed {
		t.Fatal("allowed with no assignments")
	}
	if !strings.Contains(d.Reason, `no role assignment of "alice" grants Microsoft.Compute/virtualMachines/read`) {
		t.Errorf("reason = %q", d.Reason)
	}
}

func TestAuthorizeGroupsAndInheritance(t *testing.T) {
	pol := mustPolicy(t, nil,
		Assignment{ID: "a1", Role: RoleReader, Principal: "ops", PrincipalType: PrincipalGroup, Scope: resource.MustParse(sub1)},
		Assignment{ID: "a2", Role: RoleContributor, Principal: "Bob", PrincipalType: PrincipalUser, Scope: resource.MustParse(vm1)},
	)
	cases := []struct {
		name      string
		p         Principal
		action    string
		scope     string
		wantAllow bool
		wantBy    string // assignment ID that grants it
	}{
		{"group member reads a VM below the subscription", Principal{Name: "carol", Groups: []string{"dev", "OPS"}}, ActVMRead, vm1, true, "a1"},
		{"group member cannot write", Principal{Name: "carol", Groups: []string{"ops"}}, ActVMWrite, vm1, false, ""},
		{"non-member", Principal{Name: "carol", Groups: []string{"dev"}}, ActVMRead, vm1, false, ""},
		{"a group name is not a user name", Principal{Name: "ops"}, ActVMRead, vm1, false, ""},
		{"a user name is not a group name", Principal{Name: "x", Groups: []string{"bob"}}, ActVMWrite, vm1, false, ""},
		{"user assignment, case-insensitive name", Principal{Name: "bob"}, ActVMWrite, vm1, true, "a2"},
		{"assignment at the VM covers its children", Principal{Name: "bob"}, ActVMWrite, vm1 + "/extensions/e1", true, "a2"},
		{"assignment at the VM does not cover its resource group", Principal{Name: "bob"}, ActVMWrite, rg1, false, ""},
		{"assignment at the VM does not cover a sibling with a longer name", Principal{Name: "bob"}, ActVMWrite, vm1 + "0", false, ""},
		{"other subscription", Principal{Name: "carol", Groups: []string{"ops"}}, ActVMRead, "/subscriptions/s2", false, ""},
		{"empty principal", Principal{}, ActVMRead, vm1, false, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := pol.Authorize(c.p, c.action, resource.MustParse(c.scope))
			if d.Allowed != c.wantAllow || d.Assignment.ID != c.wantBy {
				t.Errorf("got allowed=%v by %q (%s), want allowed=%v by %q", d.Allowed, d.Assignment.ID, d, c.wantAllow, c.wantBy)
			}
		})
	}
}

func TestAuthorizeReasons(t *testing.T) {
	pol := mustPolicy(t, nil,
		assign(RoleContributor, "u", sub1),
		assign(RoleOwner, "u", rg2),
	)
	d := pol.Authorize(Principal{Name: "u"}, ActRoleAsgWr, resource.MustParse(vm1))
	if d.Allowed {
		t.Fatal("Contributor assigned roles")
	}
	if !strings.Contains(d.Reason, `role "Owner" grants it only at /subscriptions/s1/resourceGroups/rg2`) {
		t.Errorf("reason %q does not explain the out-of-scope Owner assignment", d.Reason)
	}
	pol = mustPolicy(t, nil, assign(RoleContributor, "u", sub1))
	d = pol.Authorize(Principal{Name: "u"}, ActRoleAsgWr, resource.MustParse(vm1))
	if !strings.Contains(d.Reason, `role "Contributor" excludes it by NotActions "Microsoft.Authorization/*/Write"`) {
		t.Errorf("reason %q does not name the NotAction", d.Reason)
	}
	d = pol.Authorize(Principal{Name: "u"}, "Microsoft.Compute/*", resource.MustParse(vm1))
	if d.Allowed || !strings.Contains(d.Reason, "must not contain wildcards") {
		t.Errorf("a wildcard action: %s", d)
	}
	d = pol.Authorize(Principal{Name: "u"}, "Microsoft.Compute/virtualMachines/teleport/action", resource.MustParse(vm1))
	if d.Allowed || !strings.Contains(d.Reason, "unknown action") {
		t.Errorf("an unknown action: %s", d)
	}
}

func TestNewPolicyErrors(t *testing.T) {
	narrow := RoleDefinition{Name: "Narrow", Actions: []string{"*/read"}, AssignableScopes: []resource.ID{resource.MustParse(rg1)}}
	cases := []struct {
		name   string
		custom []RoleDefinition
		as     []Assignment
		want   string
	}{
		{"unknown role", nil, []Assignment{assign("Nobody", "u", rg1)}, `assignment 0: roleDefinitionName: no role named "Nobody"`},
		{"outside assignable scopes", []RoleDefinition{narrow}, []Assignment{assign("Narrow", "u", rg1), assign("Narrow", "u", sub1)}, "assignment 1: scope: role \"Narrow\" is not assignable at /subscriptions/s1"},
		{"custom role reusing a built-in name", []RoleDefinition{{Name: "reader", Actions: []string{"*"}, AssignableScopes: []resource.ID{resource.Root}}}, nil, `role 0: Name: "reader" is already defined`},
		{"custom role reusing a built-in ID", []RoleDefinition{{Name: "x", ID: "8E3AF657-A8FF-443C-A75C-2FE8C4BCB635", Actions: []string{"*"}, AssignableScopes: []resource.ID{resource.Root}}}, nil, `role 0: Id: "8E3AF657-A8FF-443C-A75C-2FE8C4BCB635" is already used by role "Owner"`},
		{"invalid custom role", []RoleDefinition{{Name: "x", Actions: []string{"nope"}, AssignableScopes: []resource.ID{resource.Root}}}, nil, "role 0: Actions[0]:"},
		{"bad principal type", nil, []Assignment{{Role: RoleReader, Principal: "u", PrincipalType: "Robot", Scope: resource.Root}}, `assignment 0: principalType: must be "User" or "Group", not "Robot"`},
		{"no principal", nil, []Assignment{{Role: RoleReader, PrincipalType: PrincipalUser, Scope: resource.Root}}, "assignment 0: principalName: must not be empty"},
		{"no scope", nil, []Assignment{{Role: RoleReader, Principal: "u", PrincipalType: PrincipalUser}}, "assignment 0: scope:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewPolicy(c.custom, c.as)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	// A role is found by name or by ID, case-insensitively.
	pol := mustPolicy(t, nil, assign("acdd72a7-3385-48ef-bd42-f606fba81ae7", "u", rg1))
	if pol.Role("security reader") == nil || pol.Role("ACDD72A7-3385-48EF-BD42-F606FBA81AE7").Name != RoleReader {
		t.Error("role lookup by name or ID failed")
	}
	if !pol.Authorize(Principal{Name: "u"}, ActVMRead, resource.MustParse(vm1)).Allowed {
		t.Error("assignment by role ID did not grant Reader's actions")
	}
}

func TestAuthorizeOperationBadInput(t *testing.T) {
	pol := mustPolicy(t, nil, assign(RoleOwner, "u", "/"))
	if err := pol.AuthorizeOperation(Principal{Name: "u"}, "policy.burn", resource.MustParse(vm1)); err == nil || !strings.Contains(err.Error(), `operation "policy.burn": unknown operation`) {
		t.Errorf("unknown operation: %v", err)
	}
	if err := pol.AuthorizeOperation(Principal{Name: "u"}, OpPolicyGet, resource.ID{}); err == nil || !strings.Contains(err.Error(), "target") {
		t.Errorf("no target: %v", err)
	}
	ds, err := pol.CheckOperation(Principal{Name: "u"}, OpInitiate, resource.MustParse(vm1))
	if err != nil || len(ds) != 5 {
		t.Errorf("CheckOperation(initiate) = %d decisions, %v; want 5, nil", len(ds), err)
	}
}
