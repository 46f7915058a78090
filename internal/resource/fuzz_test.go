package resource

import "testing"

// FuzzParse: an accepted ID prints as a string that parses back to the same
// ID; it contains itself and is contained by its subscription scope, its
// resource group scope and the root; the accessors never panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"/", "/subscriptions/s1", "/subscriptions/s1/", "/subscriptions/s1/resourceGroups/rg1",
		"/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1",
		"/subscriptions/s1/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/p",
		"/SUBSCRIPTIONS/S1/RESOURCEGROUPS/RG/PROVIDERS/A.B/c/d/e/f", "/subscriptions/s1/resourceGroups",
		"/subscriptions/s1/providers", "/subscriptions//x", "subscriptions/s1", "", "/subscriptions/\xff",
		"/subscriptions/s1/resourceGroups/rg/providers/x/y/z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			return
		}
		back, err := Parse(id.String())
		if err != nil || back.String() != id.String() || back.Key() != id.Key() || !back.Equal(id) {
			t.Fatalf("%q -> %q -> %v, %v", s, id.String(), back, err)
		}
		var u ID
		b, _ := id.MarshalText()
		if err := u.UnmarshalText(b); err != nil || !u.Equal(id) {
			t.Fatalf("%q: text round trip %v, %v", s, u, err)
		}
		_, _ = id.Name(), id.Type()
		for _, scope := range []ID{Root, id, id.SubscriptionScope(), id.ResourceGroupScope()} {
			if !scope.Contains(id) {
				t.Fatalf("%q: scope %q does not contain it", s, scope.String())
			}
		}
		if id.ResourceGroup() != "" && id.ResourceGroupScope().ResourceGroup() != id.ResourceGroup() {
			t.Fatalf("%q: resource group scope %q", s, id.ResourceGroupScope().String())
		}
	})
}
