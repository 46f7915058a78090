package rbac

import (
	"errors"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/resource"
)

// These tests are the rows of the seed's permission table
// ("What permissions are needed to configure and use JIT?").

func customRole(name string, actions ...string) RoleDefinition {
	return RoleDefinition{Name: name, IsCustom: true, Actions: actions, AssignableScopes: []resource.ID{resource.Root}}
}

func assign(role, principal, scope string) Assignment {
	return Assignment{Role: role, Principal: principal, PrincipalType: PrincipalUser, Scope: resource.MustParse(scope)}
}

// Row 1: configure or edit a JIT policy for a VM needs
// Microsoft.Security/locations/jitNetworkAccessPolicies/write on the scope of
// a subscription or resource group associated with the VM, and
// Microsoft.Compute/virtualMachines/write on the scope of a subscription or
// resource group of the VM.
func TestSeedRowConfigurePolicy(t *testing.T) {
	both := customRole("JIT Configurer",
		"Microsoft.Security/locations/jitNetworkAccessPolicies/write",
		"Microsoft.Compute/virtualMachines/write")
	jitOnly := customRole("JIT Writer", "Microsoft.Security/locations/jitNetworkAccessPolicies/write")
	vmOnly := customRole("VM Writer", "Microsoft.Compute/virtualMachines/write")
	roles := []RoleDefinition{both, jitOnly, vmOnly}

	cases := []struct {
		name        string
		assignments []Assignment
		wantDenied  string // "" if allowed, else the action the denial must name
	}{
		{"both actions at the VM's resource group", []Assignment{assign("JIT Configurer", "u", rg1)}, ""},
		{"both actions at the VM's subscription", []Assignment{assign("JIT Configurer", "u", sub1)}, ""},
		{"JIT write at subscription, VM write at resource group", []Assignment{assign("JIT Writer", "u", sub1), assign("VM Writer", "u", rg1)}, ""},
		{"both actions at another resource group", []Assignment{assign("JIT Configurer", "u", rg2)}, "jitNetworkAccessPolicies/write"},
		{"both actions on the VM alone, not its subscription or resource group", []Assignment{assign("JIT Configurer", "u", vm1)}, "jitNetworkAccessPolicies/write"},
		{"JIT write only", []Assignment{assign("JIT Writer", "u", rg1)}, "Microsoft.Compute/virtualMachines/write"},
		{"VM write only", []Assignment{assign("VM Writer", "u", rg1)}, "jitNetworkAccessPolicies/write"},
		{"JIT write at resource group, VM write at another resource group", []Assignment{assign("JIT Writer", "u", rg1), assign("VM Writer", "u", rg2)}, "Microsoft.Compute/virtualMachines/write"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pol := mustPolicy(t, roles, c.assignments...)
			for _, target := range []string{vm1, policy1} {
				err := pol.AuthorizeOperation(Principal{Name: "u"}, OpPolicyPut, resource.MustParse(target))
				checkDenied(t, err, c.wantDenied)
			}
		})
	}
}

// Row 2: requesting JIT access needs exactly these five actions; the
// least-privileged built-in role holds them and nothing else, and missing
// any one of them denies the request, naming what is missing.
func TestSeedRowRequestAccess(t *testing.T) {
	seedRow := []string{
		"Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
		"Microsoft.Security/locations/jitNetworkAccessPolicies/*/read",
		"Microsoft.Compute/virtualMachines/read",
		"Microsoft.Network/networkInterfaces/*/read",
		"Microsoft.Network/publicIPAddresses/read",
	}
	pol := mustPolicy(t, nil, assign(RoleJITRequester, "u", rg1))
	req := pol.Role(RoleJITRequester)
	if strings.Join(req.Actions, "\n") != strings.Join(seedRow, "\n") || len(req.NotActions) != 0 {
		t.Fatalf("requester role actions = %q, want exactly the seed row %q", req.Actions, seedRow)
	}
	if err := pol.AuthorizeOperation(Principal{Name: "u"}, OpInitiate, resource.MustParse(vm1)); err != nil {
		t.Fatalf("requester at rg1 initiating on vm1: %v", err)
	}
	// Each missing action, and the concrete action the denial must name.
	missing := map[string]string{
		seedRow[0]: "initiate/action",
		seedRow[1]: "jitNetworkAccessPolicies/read",
		seedRow[2]: "Microsoft.Compute/virtualMachines/read",
		seedRow[3]: "Microsoft.Network/networkInterfaces/read",
		seedRow[4]: "Microsoft.Network/publicIPAddresses/read",
	}
	for drop, named := range missing {
		var rest []string
		for _, a := range seedRow {
			if a != drop {
				rest = append(rest, a)
			}
		}
		pol := mustPolicy(t, []RoleDefinition{customRole("Partial", rest...)}, assign("Partial", "u", rg1))
		err := pol.AuthorizeOperation(Principal{Name: "u"}, OpInitiate, resource.MustParse(vm1))
		t.Run("without "+drop, func(t *testing.T) { checkDenied(t, err, named) })
	}
	// The requester can request and nothing that changes anything else.
	for _, op := range []Operation{OpPolicyPut, OpPolicyDelete, OpRevoke, OpInventory, OpAssessFix, OpRoleWrite, OpTokenAdmin} {
		if err := pol.AuthorizeOperation(Principal{Name: "u"}, op, resource.MustParse(vm1)); !errors.Is(err, ErrDenied) {
			t.Errorf("requester %s: got %v, want denied", op, err)
		}
	}
}

// Row 3: a role with the "read JIT policies" actions can read policies and
// JIT status but not change them.
func TestSeedRowReadPolicies(t *testing.T) {
	row := customRole("JIT Policy Reader",
		"Microsoft.Security/locations/jitNetworkAccessPolicies/read",
		"Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action",
		"Microsoft.Security/policies/read",
		"Microsoft.Security/pricings/read",
		"Microsoft.Compute/virtualMachines/read",
		"Microsoft.Network/*/read")
	pol := mustPolicy(t, []RoleDefinition{row}, assign("JIT Policy Reader", "u", rg1))
	u := Principal{Name: "u"}
	for _, c := range []struct {
		op     Operation
		target string
	}{{OpPolicyGet, policy1}, {OpPolicyGet, vm1}, {OpPolicyList, rg1}, {OpGrantsList, vm1}} {
		if err := pol.AuthorizeOperation(u, c.op, resource.MustParse(c.target)); err != nil {
			t.Errorf("%s on %s: %v", c.op, c.target, err)
		}
	}
	if err := pol.AuthorizeOperation(u, OpPolicyList, resource.MustParse(sub1)); !errors.Is(err, ErrDenied) {
		t.Errorf("listing the whole subscription with a role at rg1: got %v, want denied", err)
	}
	for _, op := range []Operation{OpPolicyPut, OpPolicyDelete, OpRevoke} {
		if err := pol.AuthorizeOperation(u, op, resource.MustParse(vm1)); !errors.Is(err, ErrDenied) {
			t.Errorf("%s: got %v, want denied", op, err)
		}
	}
}

// "Reader and SecurityReader roles can both view the JIT status and
// parameters", and cannot do anything to JIT.
func TestSeedReaderAndSecurityReaderViewOnly(t *testing.T) {
	for _, role := range []string{RoleReader, RoleSecurityRead} {
		pol := mustPolicy(t, nil, assign(role, "u", sub1))
		u := Principal{Name: "u"}
		for _, c := range []struct {
			op     Operation
			target string
		}{{OpPolicyGet, policy1}, {OpPolicyList, sub1}, {OpGrantsList, vm1}, {OpAssessRead, vm1}} {
			if err := pol.AuthorizeOperation(u, c.op, resource.MustParse(c.target)); err != nil {
				t.Errorf("%s %s: %v", role, c.op, err)
			}
		}
		for _, op := range []Operation{OpPolicyPut, OpPolicyDelete, OpInitiate, OpRevoke, OpApprove, OpAssessFix, OpInventory, OpRoleWrite} {
			if err := pol.AuthorizeOperation(u, op, resource.MustParse(vm1)); !errors.Is(err, ErrDenied) {
				t.Errorf("%s %s: got %v, want denied", role, op, err)
			}
		}
	}
}

func checkDenied(t *testing.T, err error, wantNamed string) {
	t.Helper()
	if wantNamed == "" {
		if err != nil {
			t.Errorf("want allowed, got %v", err)
		}
		return
	}
	var de *DeniedError
	if !errors.As(err, &de) {
		t.Fatalf("want a *DeniedError naming %q, got %v", wantNamed, err)
	}
	if !strings.Contains(err.Error(), wantNamed) {
		t.Errorf("denial %q does not name %q", err, wantNamed)
	}
}
