package inventory

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/store"
)

func TestParseExampleYAML(t *testing.T) {
	data, err := os.ReadFile("testdata/example-inventory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := []int{len(inv.VMs), len(inv.NICs), len(inv.VirtualNetworks), len(inv.Subnets), len(inv.NSGs), len(inv.Firewalls), len(inv.ENIs), len(inv.SecurityGroups), len(inv.Settings)}; !reflect.DeepEqual(got, []int{5, 3, 1, 2, 2, 1, 1, 1, 1}) {
		t.Errorf("object counts = %v", got)
	}
	r := inv.NSGs[0].SecurityRules[1]
	if r.Name != "AllowWeb" || r.Priority != 1010 || r.DestinationAddressPrefix != "VirtualNetwork" || !reflect.DeepEqual(r.DestinationPortRanges, []string{"80", "443"}) {
		t.Errorf("rule AllowWeb = %+v", r)
	}
	if got := inv.NICs[0].PublicIPs; !reflect.DeepEqual(got, []netip.Addr{netip.MustParseAddr("198.18.0.10")}) {
		t.Errorf("public IPs = %v", got)
	}
	if got := inv.ENIs[0].PublicIP; got != netip.MustParseAddr("198.18.1.10") {
		t.Errorf("ENI public IP = %v", got)
	}
	p := inv.SecurityGroups[0].IPPermissions[0]
	if p.IPProtocol != "tcp" || p.FromPort != 22 || p.IPRanges[0].CidrIP != "0.0.0.0/0" || p.IPv6Ranges[0].CidrIPv6 != "::/0" {
		t.Errorf("permission = %+v", p)
	}
	if inv.VMs[4].Cloud != Host || inv.VMs[4].Addresses[0] != netip.MustParseAddr("198.18.2.10") {
		t.Errorf("host VM = %+v", inv.VMs[4])
	}
	if !inv.Settings[0].JITDisabled || !inv.Firewalls[0].ManagedByFirewallManager {
		t.Error("setting or firewall flag lost")
	}
}

func TestParseJSONRoundTrip(t *testing.T) {
	want := Sample()
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("JSON round trip changed the inventory:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown top-level field", "vms: []\nnetworkSecurityGroup: []\n", `unknown field "networkSecurityGroup"`},
		{"unknown nested field", `{"networkSecurityGroups":[{"id":"n1","securityRules":[{"name":"a","prio":100}]}]}`, `unknown field "prio"`},
		{"bad address", "nics:\n- id: n1\n  privateIPAddresses: [10.0.0.300]\n", `10.0.0.300`},
		{"not YAML", "vms: [\n", "reading inventory document"},
		{"invalid after decoding", "networkSecurityGroups:\n- id: n1\n  securityRules:\n  - {name: a, priority: 1, direction: Inbound, access: Allow, protocol: Tcp, sourceAddressPrefix: '*', destinationAddressPrefix: '*', destinationPortRange: '22'}\n",
			`networkSecurityGroups[0] (id "n1"): securityRules[0] (name "a"): priority: 1 is outside the range 100-4096`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := Parse([]byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if !reflect.DeepEqual(inv, Inventory{}) {
				t.Errorf("Parse returned a partial inventory on error: %+v", inv)
			}
		})
	}
}

// memObjects is a map-backed store.Objects for these tests.
type memObjects = store.MapObjects

func TestSaveLoadAll(t *testing.T) {
	ctx := context.Background()
	objs := memObjects{}
	if err := Save(ctx, objs, Sample()); err != nil {
		t.Fatal(err)
	}
	var nsg netrule.NSG
	if err := objs.GetObject(ctx, KindNSG, strings.ToLower(webNSG), &nsg); err != nil {
		t.Fatalf("NSG not stored under its lower-cased ID: %v", err)
	}
	if nsg.SecurityRules[0].Name != "AllowSSHFromInternet" {
		t.Errorf("stored NSG = %+v", nsg)
	}
	var sg netrule.SecurityGroup
	if err := objs.GetObject(ctx, KindSecurityGroup, "sg-0a1b2c3d4e5f60001", &sg); err != nil {
		t.Fatalf("security group not stored under its GroupId: %v", err)
	}
	got, err := LoadAll(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	want := Sample()
	if err := Validate(got); err != nil {
		t.Fatal(err)
	}
	// LoadAll returns each list in key order; compare as sets by ID.
	if len(got.VMs) != 8 || len(got.NICs) != 5 || len(got.VirtualNetworks) != 1 || len(got.Subnets) != 3 || len(got.NSGs) != 4 ||
		len(got.Firewalls) != 1 || len(got.ENIs) != 3 || len(got.SecurityGroups) != 5 {
		t.Fatalf("loaded counts wrong: %+v", got)
	}
	byID := map[string]VM{}
	for _, vm := range got.VMs {
		byID[vm.ID] = vm
	}
	for _, vm := range want.VMs {
		if !reflect.DeepEqual(byID[vm.ID], vm) {
			t.Errorf("VM %s: loaded %+v, want %+v", vm.ID, byID[vm.ID], vm)
		}
	}
}

func TestSaveStoresNothingOfAnInvalidInventory(t *testing.T) {
	objs := memObjects{}
	inv := Sample()
	inv.NICs[0].NSG = "/nsg/missing"
	if err := Save(context.Background(), objs, inv); err == nil {
		t.Fatal("Save accepted an invalid inventory")
	}
	if len(objs) != 0 {
		t.Errorf("Save wrote %d kinds of objects before failing", len(objs))
	}
}
