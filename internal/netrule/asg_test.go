package netrule

import (
	"net/netip"
	"testing"
)

// TestApplicationSecurityGroupsAreConservative: rules naming application
// security groups (whose members drawbridge does not model) are kept and
// evaluated so that the assessment never under-reports exposure: an allow
// rule to a destination group reaches the VM, a deny rule to one does not
// protect it, and a source group stands for the virtual network only.
func TestApplicationSecurityGroupsAreConservative(t *testing.T) {
	env := NewEnv(netip.MustParsePrefix("10.0.0.0/16"))
	vm := netip.MustParseAddr("10.0.1.4")
	asg := []SubResource{{ID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/applicationSecurityGroups/web"}}
	toASG := func(name string, prio int, acc Access) SecurityRule {
		x := r(name, prio, acc, Tcp, TagInternet, "", "22")
		x.DestinationAddressPrefix, x.DestinationApplicationSecurityGroups = "", asg
		return x
	}
	fromASG := r("AllowFromWeb", 100, Allow, Tcp, "", "*", "22")
	fromASG.SourceAddressPrefix, fromASG.SourceApplicationSecurityGroups = "", asg
	for _, tc := range []struct {
		name    string
		rules   []SecurityRule
		src     Source
		allowed bool
	}{
		{"allow to a destination group reaches the VM", []SecurityRule{toASG("AllowSSHToWeb", 100, Allow)}, env.InternetSource(), true},
		{"deny to a destination group does not protect", []SecurityRule{toASG("DenySSHToWeb", 100, Deny), r("AllowSSH", 200, Allow, Tcp, TagInternet, "*", "22")}, env.InternetSource(), true},
		{"allow from a source group does not admit the internet", []SecurityRule{fromASG}, env.InternetSource(), false},
		{"allow from a source group admits the virtual network", []SecurityRule{fromASG, r("DenyVnet", 200, Deny, Tcp, "*", "*", "22")}, AddressSource(netip.MustParseAddr("10.0.2.9")), true},
	} {
		for _, rule := range tc.rules {
			if errs := CheckSecurityRule(rule); len(errs) > 0 {
				t.Fatalf("%s: rule %s invalid: %v", tc.name, rule.Name, errs)
			}
		}
		c, err := CompileNSG(*nsg("n", tc.rules...))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		v := EvaluateAzure([]*CompiledNSG{c}, env, Query{Destination: vm, Port: 22, Protocol: Tcp, Source: tc.src})
		if v.Allowed != tc.allowed {
			t.Errorf("%s: allowed = %v (deciding %v), want %v", tc.name, v.Allowed, v.Deciding(), tc.allowed)
		}
	}
}
