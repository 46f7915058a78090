package rbac

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseRoleDefinition: any input either fails with an error or yields a
// valid role that survives a round trip unchanged. The seed corpus is in
// testdata/fuzz/FuzzParseRoleDefinition; plain `go test` runs it.
func FuzzParseRoleDefinition(f *testing.F) {
	f.Add([]byte(`{"Name":"r","Actions":["*/read"],"NotActions":[],"AssignableScopes":["/"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRoleDefinition(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("parsed role does not validate: %v", err)
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		back, err := ParseRoleDefinition(b)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		if !reflect.DeepEqual(normalize(back), normalize(r)) {
			t.Fatalf("round trip changed the role:\n%+v\n%+v", r, back)
		}
	})
}

// FuzzMatchAction checks properties that hold for every pattern and action:
// it never panics, matching ignores case, "*" matches every non-empty
// action, a wildcard-free pattern matches exactly itself (ignoring case),
// "X/*" matches every action that starts with "X/", and strings longer than
// the action limit never match.
func FuzzMatchAction(f *testing.F) {
	f.Add("Microsoft.Network/*/read", "Microsoft.Network/networkInterfaces/read")
	f.Fuzz(func(t *testing.T, pattern, action string) {
		got := MatchAction(pattern, action)
		if len(pattern) > maxActionLen || len(action) > maxActionLen {
			if got {
				t.Fatalf("over-long %q / %q matched", pattern, action)
			}
			return
		}
		if got != MatchAction(strings.ToUpper(pattern), strings.ToLower(action)) && isASCII(pattern+action) {
			t.Fatalf("MatchAction(%q, %q) depends on case", pattern, action)
		}
		if action != "" && !MatchAction("*", action) {
			t.Fatalf("\"*\" does not match %q", action)
		}
		if !strings.Contains(action, "*") && action != "" && !MatchAction(action, action) {
			t.Fatalf("%q does not match itself", action)
		}
		if !strings.Contains(pattern, "*") && got != strings.EqualFold(pattern, action) && isASCII(pattern+action) {
			t.Fatalf("literal %q vs %q: got %v", pattern, action, got)
		}
		if i := strings.Index(action, "/"); i > 0 && !strings.Contains(action[:i], "*") && !MatchAction(action[:i]+"/*", action) {
			t.Fatalf("%q does not match %q", action[:i]+"/*", action)
		}
		// Validation must agree with itself and not panic either.
		if ValidatePattern(pattern) == nil && ValidateAction(pattern) == nil && strings.Contains(pattern, "*") {
			t.Fatalf("ValidateAction accepted the wildcard %q", pattern)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
