package assess

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
)

// TestAWSGroupAndPrefixListSourcesAreNotInternet assesses real `aws ec2
// describe-*` output: SSH open to 0.0.0.0/0 is internet-facing; SSH from a
// security group or a managed prefix list (and all traffic from the
// group's own members) is not.
func TestAWSGroupAndPrefixListSourcesAreNotInternet(t *testing.T) {
	all := map[string]json.RawMessage{}
	for _, f := range []string{"aws-describe-security-groups.json", "aws-describe-instances.json", "aws-describe-network-interfaces.json"} {
		b, err := os.ReadFile("../inventory/testdata/" + f)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			all[k] = v
		}
	}
	doc, _ := json.Marshal(all)
	inv, err := inventory.Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	rep := assessOrFail(t, Input{Inventory: inv, Providers: []string{inventory.ProviderAWS}})
	want := map[string]string{
		inventory.AWSInstanceID("111122223333", "eu-west-1", "i-0a1b2c3d4e5f60011"): "Unhealthy 22:sg-0a1b2c3d4e5f60001/IpPermissions[0]/0.0.0.0/0",
		inventory.AWSInstanceID("111122223333", "eu-west-1", "i-0a1b2c3d4e5f60012"): "Healthy",
	}
	if len(rep.Results) != len(want) {
		t.Fatalf("%d results, want %d", len(rep.Results), len(want))
	}
	for _, r := range rep.Results {
		if got := summary(r); got != want[r.ID] {
			t.Errorf("%s: got %s, want %s", r.ID, got, want[r.ID])
		}
	}
}
