package inventory

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// mergeDocs combines AWS CLI outputs as `jq -s add` does.
func mergeDocs(t *testing.T, files ...string) []byte {
	t.Helper()
	all := map[string]json.RawMessage{}
	for _, f := range files {
		b, err := os.ReadFile("testdata/" + f)
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
	b, _ := json.Marshal(all)
	return b
}

func TestParseAWSDescribeSecurityGroupsAsPrinted(t *testing.T) {
	inv, err := Parse(mergeDocs(t, "aws-describe-security-groups.json"))
	if err != nil {
		t.Fatalf("describe-security-groups output rejected: %v", err)
	}
	if len(inv.SecurityGroups) != 2 {
		t.Fatalf("%d groups", len(inv.SecurityGroups))
	}
	app := inv.SecurityGroups[1]
	p := app.IPPermissions[0]
	if len(p.UserIDGroupPairs) != 1 || p.UserIDGroupPairs[0].GroupID != "sg-0a1b2c3d4e5f60001" || len(p.PrefixListIDs) != 1 ||
		p.PrefixListIDs[0].PrefixListID != "pl-0a1b2c3d4e5f60009" || app.OwnerID != "111122223333" || len(app.IPPermissionsEgress) != 1 {
		t.Fatalf("AWS fields lost: %+v", app)
	}
	if tg := inv.SecurityGroups[0].Tags; len(tg) != 1 || tg[0].Key != "Name" || tg[0].Value != "bastion-ssh" {
		t.Errorf("tags %+v", inv.SecurityGroups[0].Tags)
	}
	// Round trip: what drawbridge stores reads back the same.
	b, err := json.Marshal(Inventory{SecurityGroups: inv.SecurityGroups})
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(b)
	b2, _ := json.Marshal(Inventory{SecurityGroups: again.SecurityGroups})
	if err != nil || string(b) != string(b2) {
		t.Fatalf("round trip: %v\n%s\n%s", err, b, b2)
	}
}

func TestParseAWSDescribeInstancesAndENIs(t *testing.T) {
	inv, err := Parse(mergeDocs(t, "aws-describe-security-groups.json", "aws-describe-instances.json", "aws-describe-network-interfaces.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.VMs) != 2 {
		t.Fatalf("VMs %+v (the terminated instance must be skipped)", inv.VMs)
	}
	b := inv.VMs[0]
	if b.ID != "/subscriptions/aws-111122223333/resourceGroups/eu-west-1/providers/AWS.EC2/instances/i-0a1b2c3d4e5f60011" ||
		b.Name != "bastion" || b.Cloud != AWS || b.Provider != ProviderAWS || b.Location != "eu-west-1" ||
		b.InstanceID != "i-0a1b2c3d4e5f60011" || !reflect.DeepEqual(b.ENIs, []string{"eni-0a1b2c3d4e5f60051"}) {
		t.Errorf("bastion VM %+v", b)
	}
	if len(inv.ENIs) != 2 {
		t.Fatalf("ENIs %+v", inv.ENIs)
	}
	e := inv.ENIs[0]
	if e.PublicIP.String() != "198.51.100.10" || e.PrivateIPs[0].String() != "10.20.1.10" || e.SecurityGroups[0] != "sg-0a1b2c3d4e5f60001" || e.SubnetID != "subnet-0a1b2c3d4e5f60021" {
		t.Errorf("ENI %+v", e)
	}
	// Alone, instances refer to groups the document does not have.
	if _, err := Parse(mergeDocs(t, "aws-describe-instances.json")); err == nil || !strings.Contains(err.Error(), "sg-0a1b2c3d4e5f60001") {
		t.Errorf("instances without their groups: %v", err)
	}
}
