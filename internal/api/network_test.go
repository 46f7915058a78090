package api_test

import (
	"fmt"
	"strings"
	"testing"
)

// The simulated NSG is readable in Azure's own resource shape, and shows a
// grant's allow rule while it lasts.
func TestNSGInAzureShape(t *testing.T) {
	e := newEnv(t)
	nsgPath := "/subscriptions/" + sub + "/resourcegroups/demo-rg/providers/microsoft.network/networkSecurityGroups/web-01-nsg"
	code, body := e.do("GET", nsgPath+"?api-version=2023-09-01", "")
	if code != 200 {
		t.Fatalf("GET NSG = %d %v", code, body)
	}
	if body["type"] != "Microsoft.Network/networkSecurityGroups" {
		t.Fatalf("type = %v", body["type"])
	}
	props := body["properties"].(map[string]any)
	rules := props["securityRules"].([]any)
	defaults := props["defaultSecurityRules"].([]any)
	if len(defaults) != 6 {
		t.Fatalf("%d default rules, want Azure's 6", len(defaults))
	}
	first := rules[0].(map[string]any)
	rp := first["properties"].(map[string]any)
	if first["name"] != "AllowSSHFromInternet" || rp["priority"] != float64(1000) || rp["access"] != "Allow" || rp["destinationPortRange"] != "22" {
		t.Fatalf("first rule = %v", first)
	}
	if _, flat := first["priority"]; flat {
		t.Fatal("rule fields must sit under properties, as in Azure")
	}

	if code, b := e.do("PUT", polURL, azurePolicyBody(web01, 22)); code != 200 {
		t.Fatalf("PUT = %d %v", code, b)
	}
	_, body = e.do("GET", nsgPath, "")
	if n := len(body["properties"].(map[string]any)["securityRules"].([]any)); n != len(rules)+1 {
		t.Fatalf("after enabling JIT: %d rules, want %d (one deny rule added)", n, len(rules)+1)
	}

	if code, _ := e.do("GET", strings.Replace(nsgPath, "web-01-nsg", "nope", 1), ""); code != 404 {
		t.Fatalf("unknown NSG = %d", code)
	}
}

func TestSecurityGroupsInEC2Shape(t *testing.T) {
	e := newEnv(t)
	bastion := "/subscriptions/aws-111122223333/resourceGroups/us-east-1/providers/AWS.EC2/instances/i-0a1b2c3d4e5f60001"
	code, body := e.do("GET", "/drawbridge/v1/aws/security-groups?vm="+bastion, "")
	if code != 200 {
		t.Fatalf("= %d %v", code, body)
	}
	groups := body["SecurityGroups"].([]any)
	found := false
	for _, g := range groups {
		gm := g.(map[string]any)
		if gm["GroupName"] == "ssh-open" {
			perms := gm["IpPermissions"].([]any)
			p := perms[0].(map[string]any)
			found = p["IpProtocol"] == "tcp" && p["FromPort"] == float64(22) && fmt.Sprint(p["IpRanges"]) == "[map[CidrIp:0.0.0.0/0]]"
		}
	}
	if !found {
		t.Fatalf("ssh-open with tcp 22 from 0.0.0.0/0 not in %v", groups)
	}
	if code, _ := e.do("GET", "/drawbridge/v1/aws/security-groups", ""); code != 400 {
		t.Fatalf("missing vm = %d", code)
	}
}
