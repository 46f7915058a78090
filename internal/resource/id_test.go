package resource

import "testing"

func TestParseAndParts(t *testing.T) {
	id, err := Parse("/subscriptions/S1/resourceGroups/RG1/providers/Microsoft.Compute/virtualMachines/vm1")
	if err != nil {
		t.Fatal(err)
	}
	if id.Subscription() != "S1" || id.ResourceGroup() != "RG1" || id.Name() != "vm1" {
		t.Fatalf("parts: %q %q %q", id.Subscription(), id.ResourceGroup(), id.Name())
	}
	if got := id.Type(); got != "Microsoft.Compute/virtualMachines" {
		t.Fatalf("type = %q", got)
	}
	if got := id.ResourceGroupScope().String(); got != "/subscriptions/S1/resourceGroups/RG1" {
		t.Fatalf("rg scope = %q", got)
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{
		"", "subscriptions/s1", "/subscriptions", "/subscriptions//resourceGroups/rg",
		"/tenants/t1", "/subscriptions/s1/resourceGroups", "/subscriptions/s1/foo/bar",
		"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines",
		"/subscriptions/s1/resourceGroups/rg/other/x",
	} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}

func TestContains(t *testing.T) {
	vm := MustParse("/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1")
	cases := []struct {
		scope string
		want  bool
	}{
		{"/", true},
		{"/subscriptions/s1", true},
		{"/subscriptions/S1/resourcegroups/RG1", true},
		{"/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1", true},
		{"/subscriptions/s1/resourceGroups/rg10", false},
		{"/subscriptions/s2", false},
		{"/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm10", false},
	}
	for _, c := range cases {
		if got := MustParse(c.scope).Contains(vm); got != c.want {
			t.Errorf("%s contains vm: got %v want %v", c.scope, got, c.want)
		}
	}
}
