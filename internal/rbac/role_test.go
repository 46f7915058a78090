package rbac

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/resource"
)

func TestMatchAction(t *testing.T) {
	cases := []struct {
		pattern, action string
		want            bool
	}{
		{"*", "Microsoft.Compute/virtualMachines/write", true},
		{"*/read", "Microsoft.Compute/virtualMachines/read", true},
		{"*/read", "Microsoft.Compute/virtualMachines/write", false},
		{"Microsoft.Network/*/read", "Microsoft.Network/networkInterfaces/read", true},
		{"Microsoft.Network/*/read", "Microsoft.Network/networkInterfaces/ipConfigurations/read", true},
		{"Microsoft.Network/*/read", "Microsoft.Compute/virtualMachines/read", false},
		{"Microsoft.Network/*/read", "Microsoft.Network/networkInterfaces/write", false},
		{"Microsoft.Security/locations/jitNetworkAccessPolicies/*/read", "Microsoft.Security/locations/jitNetworkAccessPolicies/read", true},
		{"Microsoft.Security/locations/jitNetworkAccessPolicies/*/read", "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action", false},
		{"Microsoft.Security/locations/jitNetworkAccessPolicies/*/read", "Microsoft.Security/locations/read", false},
		{"Microsoft.Security/*", "Microsoft.Security/locations/jitNetworkAccessPolicies/initiate/action", true},
		{"Microsoft.Security/*", "Microsoft.SecurityInsights/alerts/read", false},
		{"microsoft.COMPUTE/virtualmachines/READ", "Microsoft.Compute/virtualMachines/read", true},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write", true},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/read", false},
		{"Microsoft.Security/locations/jit*/write", "Microsoft.Security/locations/jitNetworkAccessPolicies/write", true},
		{"Microsoft.Security/locations/jit*/write", "Microsoft.Security/locations/other/write", false},
		{"Microsoft.Security/locations/*Policies/write", "Microsoft.Security/locations/jitNetworkAccessPolicies/write", true},
		{"Microsoft.Security/locations/j*Net*Policies/write", "Microsoft.Security/locations/jitNetworkAccessPolicies/write", true},
		{"Microsoft.Security/locations/j*Net*xPolicies/write", "Microsoft.Security/locations/jitNetworkAccessPolicies/write", false},
		// A "*" inside a segment does not cross a "/".
		{"Microsoft.Security/loc*/write", "Microsoft.Security/locations/jitNetworkAccessPolicies/write", false},
		{"Microsoft.Compute/virtualMachines/read", "Microsoft.Compute/virtualMachines/read/extra", false},
		{"Microsoft.Compute/virtualMachines/read", "Microsoft.Compute/virtualMachines", false},
		{"*", "", false},
	}
	for _, c := range cases {
		if got := MatchAction(c.pattern, c.action); got != c.want {
			t.Errorf("MatchAction(%q, %q) = %v, want %v", c.pattern, c.action, got, c.want)
		}
	}
}

func TestValidatePattern(t *testing.T) {
	good := []string{"*", "*/read", "Microsoft.Security/*", "Microsoft.Network/*/read",
		"Microsoft.Authorization/elevateAccess/Action", "microsoft.compute/virtualmachines/READ"}
	for _, s := range good {
		if err := ValidatePattern(s); err != nil {
			t.Errorf("ValidatePattern(%q): %v", s, err)
		}
	}
	bad := []struct{ in, reason string }{
		{"", "empty"},
		{"Microsoft.Compute//read", "segment 2 is empty"},
		{"Microsoft.Compute/virtualMachines/read ", "invalid character"},
		{"Microsoft.Compute/virtualMachines/launch", "must end in read, write, delete, action"},
		{"Microsoft.Compute/read", "want {Namespace}/{resourceType}/{verb}"},
		{"Microsoft.Compute/virtualMachines/fly/action", "unknown action"},
		{"Microsoft.Secruity/*", "matches no known action"},
		{"Microsoft.Compute/**/read", "repeated wildcard"},
		{"Microsoft.Compute/virtualMachines/re?d", "invalid character"},
	}
	for _, c := range bad {
		err := ValidatePattern(c.in)
		if err == nil || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("ValidatePattern(%q) = %v, want an error containing %q", c.in, err, c.reason)
		}
	}
	if err := ValidateAction("Microsoft.Network/*/read"); err == nil || !strings.Contains(err.Error(), "wildcards") {
		t.Errorf("ValidateAction with a wildcard = %v, want refused", err)
	}
}

func TestParseRoleDefinitionShapes(t *testing.T) {
	got, err := ParseRoleDefinition(readFile(t, "testdata/roles/jit-admin-cli.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := RoleDefinition{
		Name:        "JIT Administrator",
		ID:          "9d0c5b1e-6f34-4a8c-b1d2-3e4f5a6b7c8d",
		IsCustom:    true,
		Description: "Configure JIT policies (Azure CLI shape).",
		Actions:     []string{"Microsoft.Security/locations/jitNetworkAccessPolicies/*", "Microsoft.Compute/virtualMachines/*"},
		NotActions:  []string{"Microsoft.Compute/virtualMachines/delete"},
		AssignableScopes: []resource.ID{
			resource.MustParse("/subscriptions/s1/resourceGroups/rg1"),
			resource.MustParse("/subscriptions/s2"),
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CLI shape:\n got %+v\nwant %+v", got, want)
	}
	if !got.Allows("Microsoft.Compute/virtualMachines/write") || got.Allows("Microsoft.Compute/virtualMachines/delete") {
		t.Errorf("NotActions not applied: write %v, delete %v", got.Allows("Microsoft.Compute/virtualMachines/write"), got.Allows("Microsoft.Compute/virtualMachines/delete"))
	}
}

func TestParseRoleDefinitionErrors(t *testing.T) {
	cases := []struct{ name, json, want string }{
		{"not JSON", `{"Name":`, "want one JSON object"},
		{"an array", `[]`, "want one JSON object"},
		{"empty name", `{"Name":"  ","Actions":["*/read"],"AssignableScopes":["/"]}`, "Name: must not be empty"},
		{"no actions", `{"Name":"r","Actions":[],"AssignableScopes":["/"]}`, "Actions: role \"r\" grants no actions"},
		{"unknown action", `{"Name":"r","Actions":["Microsoft.Compute/virtualMachines/explode/action"],"AssignableScopes":["/"]}`, "Actions[0]: action \"Microsoft.Compute/virtualMachines/explode/action\": unknown action"},
		{"malformed action", `{"Name":"r","Actions":["*/read","Microsoft.Compute"],"AssignableScopes":["/"]}`, "Actions[1]:"},
		{"malformed not action", `{"Name":"r","Actions":["*"],"NotActions":["a b"],"AssignableScopes":["/"]}`, "NotActions[0]:"},
		{"scope not a resource ID", `{"Name":"r","Actions":["*/read"],"AssignableScopes":["subscriptions/s1"]}`, "AssignableScopes[0]: resource ID \"subscriptions/s1\" must start with /subscriptions/"},
		{"scope with a bad group", `{"Name":"r","Actions":["*/read"],"AssignableScopes":["/","/subscriptions/s1/resourcegroups"]}`, "AssignableScopes[1]:"},
		{"no scopes", `{"Name":"r","Actions":["*/read"]}`, "AssignableScopes: role \"r\" must name at least one scope"},
		{"misspelt field", `{"Name":"r","Actions":["*"],"NotAction":["Microsoft.Authorization/*/Write"],"AssignableScopes":["/"]}`, "unknown field \"NotAction\""},
		{"data actions", `{"Name":"r","Actions":["*/read"],"DataActions":["Microsoft.Storage/x/read"],"AssignableScopes":["/"]}`, "DataActions: data actions are not supported"},
		{"CLI shape with an empty role name", `{"roleName":"","permissions":[{"actions":["*/read"]}],"assignableScopes":["/"]}`, "Name: must not be empty"},
		{"CLI shape with a bad action", `{"roleName":"r","permissions":[{"actions":["*/reed"]}],"assignableScopes":["/"]}`, "Actions[0]:"},
		{"trailing data", `{"Name":"r","Actions":["*/read"],"AssignableScopes":["/"]} {}`, "after top-level value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseRoleDefinition([]byte(c.json))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// Every committed role file parses, and writing it out and parsing again
// gives the same definition (and the same bytes the second time).
func TestRoleFilesRoundTrip(t *testing.T) {
	files, err := filepath.Glob("testdata/roles/*.json")
	if err != nil || len(files) < 3 {
		t.Fatalf("role files: %v %v", files, err)
	}
	for _, f := range files {
		r1, err := ParseRoleDefinition(readFile(t, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		b1, err := json.Marshal(r1)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ParseRoleDefinition(b1)
		if err != nil {
			t.Errorf("%s: re-parsing %s: %v", f, b1, err)
			continue
		}
		if !reflect.DeepEqual(r1, r2) {
			t.Errorf("%s: round trip changed the role:\n%+v\n%+v", f, r1, r2)
		}
		b2, _ := json.Marshal(r2)
		if string(b1) != string(b2) {
			t.Errorf("%s: second encoding differs:\n%s\n%s", f, b1, b2)
		}
	}
	// The built-ins round-trip too (they are what `role show` prints).
	for _, r := range BuiltinRoles() {
		b, _ := json.Marshal(r)
		back, err := ParseRoleDefinition(b)
		if err != nil || !reflect.DeepEqual(normalize(back), normalize(r)) {
			t.Errorf("built-in %q: %v\n%+v\n%+v", r.Name, err, back, r)
		}
	}
}

// The PowerShell shape written by MarshalJSON, field for field.
func TestRoleMarshalShape(t *testing.T) {
	r := RoleDefinition{Name: "n", ID: "i", IsCustom: true, Description: "d",
		Actions: []string{"*/read"}, AssignableScopes: []resource.ID{resource.MustParse("/subscriptions/s1")}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Name":"n","Id":"i","IsCustom":true,"Description":"d","Actions":["*/read"],"NotActions":[],"AssignableScopes":["/subscriptions/s1"]}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
}

func normalize(r RoleDefinition) RoleDefinition {
	if r.NotActions == nil {
		r.NotActions = []string{}
	}
	return r
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
