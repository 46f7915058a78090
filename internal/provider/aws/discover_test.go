package aws_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/cloudsim/ec2sim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	awsprov "github.com/drawbridge/drawbridge/internal/provider/aws"
)

// TestDiscoverRoundTripsTheSample seeds the simulator with the sample
// inventory's AWS half, discovers it through the SDK's paginators (small
// pages, throttling injected) and parses the result as `inventory apply`
// does: the same instances, ENIs and rules come back.
func TestDiscoverRoundTripsTheSample(t *testing.T) {
	sim := ec2sim.New(ec2sim.Options{AccessKey: "AKIDTEST", SecretKey: "s", Region: inventory.SampleAWSRegion, AccountID: inventory.SampleAWSAccount})
	ts := httptest.NewServer(sim)
	defer ts.Close()
	sample := inventory.Sample()
	sim.Seed(sample)
	// Enough more instances for several pages of five.
	const extra = 9
	for i := 0; i < extra; i++ {
		id := fmt.Sprintf("i-0e%015d", i)
		eni := fmt.Sprintf("eni-0e%015d", i)
		sim.PutENI(ec2sim.ENI{ID: eni, VpcID: "vpc-0default", InstanceID: id, Groups: []string{sample.SecurityGroups[0].GroupID}})
		sim.PutInstance(ec2sim.Instance{ID: id, ENIs: []string{eni}})
	}
	sim.SetFaults(ec2sim.Faults{ThrottleRate: 0.3, Seed: 3})
	c := awsprov.NewEndpointClient(ts.URL, inventory.SampleAWSRegion, "AKIDTEST", "s", awsprov.RetryOptions{MaxAttempts: 40, MaxBackoff: time.Millisecond})
	d, err := awsprov.Discover(context.Background(), c, 5)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := d.Document()
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Parse(doc)
	if err != nil {
		t.Fatalf("discovered document rejected: %v", err)
	}
	var want []inventory.VM
	for _, vm := range sample.VMs {
		if vm.Cloud == inventory.AWS {
			want = append(want, vm)
		}
	}
	if len(inv.VMs) != len(want)+extra || len(inv.SecurityGroups) != len(sample.SecurityGroups) || len(inv.ENIs) != len(sample.ENIs)+extra {
		t.Fatalf("discovered %d VMs, %d groups, %d ENIs; want %d, %d, %d", len(inv.VMs), len(inv.SecurityGroups), len(inv.ENIs), len(want)+extra, len(sample.SecurityGroups), len(sample.ENIs)+extra)
	}
	for _, w := range want {
		id := inventory.AWSInstanceID(inventory.SampleAWSAccount, inventory.SampleAWSRegion, w.InstanceID)
		found := false
		for _, vm := range inv.VMs {
			if vm.ID == id {
				found = true
				if vm.Name != w.Name || vm.Provider != inventory.ProviderAWS || len(vm.ENIs) != len(w.ENIs) || vm.ENIs[0] != w.ENIs[0] {
					t.Errorf("VM %s: %+v, want name %s, ENIs %v", id, vm, w.Name, w.ENIs)
				}
			}
		}
		if !found {
			t.Errorf("instance %s (%s) not discovered", w.InstanceID, id)
		}
	}
	for i, g := range sample.SecurityGroups {
		got := inv.SecurityGroups[i]
		if got.GroupID != g.GroupID || !ec2sim.SameRules(ec2sim.RulesOf(got.IPPermissions), ec2sim.RulesOf(g.IPPermissions)) {
			t.Errorf("group %s: %+v, want %+v", g.GroupID, got.IPPermissions, g.IPPermissions)
		}
	}
	if sim.Calls()["DescribeInstances"] < 3 {
		t.Errorf("instances came in %d call(s): paging not exercised", sim.Calls()["DescribeInstances"])
	}
}
