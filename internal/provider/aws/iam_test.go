package aws_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"sort"
	"testing"

	awsprov "github.com/drawbridge/drawbridge/internal/provider/aws"
	"github.com/drawbridge/drawbridge/internal/provider/aws/conformance"
)

// TestIAMPolicyCoversExactlyTheCallsMade records every EC2 action the
// provider and discovery make over a full lifecycle (with faults, drift
// and an expiry) and checks that contrib/aws/drawbridge-iam-policy.json
// grants exactly those IAM actions: nothing missing, nothing extra.
// CreateSecurityGroup with TagSpecifications also needs ec2:CreateTags.
func TestIAMPolicyCoversExactlyTheCallsMade(t *testing.T) {
	w := newWireWorld(t, conformance.StandardSpec())
	w.Faults(true)
	if _, err := awsprov.Discover(context.Background(), awsprov.NewEndpointClient(w.url, "us-east-1", "AKIDTEST", "secret", awsprov.RetryOptions{MaxAttempts: 40}), 5); err != nil {
		t.Fatal(err)
	}
	ssh := conformanceSSH()
	vm := w.VM("web")
	p := w.Provider()
	for _, d := range []struct{ grants int }{{0}, {1}, {0}} {
		if _, err := p.Apply(context.Background(), vm, desired(vm, ssh, d.grants)); err != nil {
			t.Fatal(err)
		}
	}
	w.AddRule(t, "sg-0web", conformance.Rule{Proto: "tcp", From: 22, To: 22, CIDR: "203.0.113.0/24"})
	if _, err := p.Apply(context.Background(), vm, desired(vm, ssh, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Apply(context.Background(), vm, desired(vm, nil, 0)); err != nil {
		t.Fatal(err)
	}
	var used []string
	for action := range w.sim.Calls() {
		used = append(used, "ec2:"+action)
		if action == "CreateSecurityGroup" {
			used = append(used, "ec2:CreateTags")
		}
	}
	sort.Strings(used)
	used = slices.Compact(used)

	b, err := os.ReadFile("../../../contrib/aws/drawbridge-iam-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Statement []struct {
			Action json.RawMessage
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var granted []string
	for _, s := range doc.Statement {
		var many []string
		if json.Unmarshal(s.Action, &many) != nil {
			var one string
			if err := json.Unmarshal(s.Action, &one); err != nil {
				t.Fatal(err)
			}
			many = []string{one}
		}
		granted = append(granted, many...)
	}
	sort.Strings(granted)
	granted = slices.Compact(granted)
	if !slices.Equal(used, granted) {
		t.Fatalf("IAM policy grants %v,\nthe provider and discovery call %v", granted, used)
	}
}
