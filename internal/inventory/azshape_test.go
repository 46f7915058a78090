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
)

func readAz(t *testing.T, name string) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile("testdata/az/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const azSub = "/subscriptions/6f1c2a9e-0d4b-4c53-9a3e-2b7d1e8f4a10/resourceGroups/prod-rg/providers/"

// azDocument is an inventory document made of az CLI output pasted as is:
// `az network nsg show` (twice), `az network nic show`, `az network vnet
// show` and `az network public-ip list`. testdata/az/inventory-from-az.json
// is the same document as a file (the README applies it), with provider sim.
func azDocument(t *testing.T) []byte {
	doc := map[string]any{
		"vms": []any{map[string]any{"id": azSub + "Microsoft.Compute/virtualMachines/app-01", "name": "app-01", "cloud": "azure",
			"provider": "azure", "location": "westeurope", "nics": []string{azSub + "Microsoft.Network/networkInterfaces/app-01VMNic"}}},
		"networkSecurityGroups": []any{readAz(t, "nsg-show-bastion.json"), readAz(t, "nsg-show-vm.json")},
		"nics":                  []any{readAz(t, "nic-show.json")},
		"virtualNetworks":       []any{readAz(t, "vnet-show.json")},
		"publicIPAddresses":     readAz(t, "public-ip-list.json"),
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseAzCLIOutput(t *testing.T) {
	inv, err := Parse(azDocument(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.NSGs) != 2 || len(inv.NICs) != 1 || len(inv.Subnets) != 2 || len(inv.VirtualNetworks) != 1 {
		t.Fatalf("counts: %d NSGs, %d NICs, %d subnets, %d vnets", len(inv.NSGs), len(inv.NICs), len(inv.Subnets), len(inv.VirtualNetworks))
	}
	bastion := inv.NSGs[0]
	if bastion.Name != "bastion-nsg" || len(bastion.SecurityRules) != 5 {
		t.Fatalf("bastion NSG: %+v", bastion)
	}
	gm := bastion.SecurityRules[1]
	want := netrule.SecurityRule{Name: "AllowGatewayManagerInbound", Priority: 130, Direction: netrule.Inbound, Access: netrule.Allow,
		Protocol: netrule.Tcp, SourceAddressPrefix: "GatewayManager", SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "443"}
	if !reflect.DeepEqual(gm, want) {
		t.Errorf("GatewayManager rule\n got %+v\nwant %+v", gm, want)
	}
	if r := bastion.SecurityRules[3]; !reflect.DeepEqual(r.DestinationPortRanges, []string{"8080", "5701"}) || r.DestinationPortRange != "" {
		t.Errorf("plural port ranges: %+v", r)
	}
	nic := inv.NICs[0]
	wantNIC := NIC{ID: azSub + "Microsoft.Network/networkInterfaces/app-01VMNic", Subnet: azSub + "Microsoft.Network/virtualNetworks/prod-vnet/subnets/app",
		NSG: azSub + "Microsoft.Network/networkSecurityGroups/app-01NSG", PrivateIPs: []netip.Addr{netip.MustParseAddr("10.20.1.4")},
		PublicIPs: []netip.Addr{netip.MustParseAddr("198.18.20.4")}}
	if !reflect.DeepEqual(nic, wantNIC) {
		t.Errorf("NIC\n got %+v\nwant %+v", nic, wantNIC)
	}
	if s := inv.Subnets[1]; s.NSG != azSub+"Microsoft.Network/networkSecurityGroups/bastion-nsg" || s.AddressPrefix != netip.MustParsePrefix("10.20.255.0/26") {
		t.Errorf("bastion subnet: %+v", s)
	}
	if v := inv.VirtualNetworks[0]; !reflect.DeepEqual(v.AddressSpace, []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}) {
		t.Errorf("vnet: %+v", v)
	}
}

// TestAzOutputRoundTrips: what az printed, once stored, reads back as the
// same objects (inventory apply, then the server's own view of it).
func TestAzOutputRoundTrips(t *testing.T) {
	inv, err := Parse(azDocument(t))
	if err != nil {
		t.Fatal(err)
	}
	objs := memObjects{}
	if err := Save(context.Background(), objs, inv); err != nil {
		t.Fatal(err)
	}
	back, err := LoadAll(context.Background(), objs)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]netrule.NSG{}
	for _, n := range back.NSGs {
		byID[n.ID] = n
	}
	for _, want := range inv.NSGs {
		if got := byID[want.ID]; !reflect.DeepEqual(got, want) {
			t.Errorf("NSG %s\n got %+v\nwant %+v", want.ID, got, want)
		}
	}
	if !reflect.DeepEqual(back.NICs, inv.NICs) {
		t.Errorf("NICs\n got %+v\nwant %+v", back.NICs, inv.NICs)
	}
}

// TestAzOutputWithApplicationSecurityGroupsIsKept: a rule that names
// application security groups instead of prefixes is kept, with the
// groups as references, and the document stays valid.
func TestAzOutputWithApplicationSecurityGroupsIsKept(t *testing.T) {
	var nsg map[string]any
	if err := json.Unmarshal(readAz(t, "nsg-show-vm.json"), &nsg); err != nil {
		t.Fatal(err)
	}
	asg := azSub + "Microsoft.Network/applicationSecurityGroups/web"
	r := nsg["securityRules"].([]any)[1].(map[string]any)
	delete(r, "sourceAddressPrefix")
	r["sourceAddressPrefixes"] = []any{}
	r["sourceApplicationSecurityGroups"] = []any{map[string]any{"id": asg, "resourceGroup": "rg"}}
	b, _ := json.Marshal(map[string]any{"networkSecurityGroups": []any{nsg}})
	inv, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	got := inv.NSGs[0].SecurityRules[1]
	if len(got.SourceApplicationSecurityGroups) != 1 || got.SourceApplicationSecurityGroups[0].ID != asg || got.SourceAddressPrefix != "" {
		t.Fatalf("rule with an application security group: %+v", got)
	}
	// A reference without an id is still an error naming the field.
	r["sourceApplicationSecurityGroups"] = []any{map[string]any{"resourceGroup": "rg"}}
	b, _ = json.Marshal(map[string]any{"networkSecurityGroups": []any{nsg}})
	if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), "sourceApplicationSecurityGroups[0].id") {
		t.Fatalf("err = %v, want one naming sourceApplicationSecurityGroups[0].id", err)
	}
}

// TestOwnShapeStaysStrict: an object in drawbridge's own shape with a
// misspelt field is still an error, next to az-shaped ones.
func TestOwnShapeStaysStrict(t *testing.T) {
	doc := map[string]any{
		"networkSecurityGroups": []any{readAz(t, "nsg-show-vm.json"), map[string]any{"id": azSub + "Microsoft.Network/networkSecurityGroups/x", "name": "x", "securityRule": []any{}}},
	}
	b, _ := json.Marshal(doc)
	if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), `unknown field "securityRule"`) {
		t.Fatalf("err = %v, want unknown field securityRule", err)
	}
}

func TestAzDocumentFile(t *testing.T) {
	b, err := os.ReadFile("testdata/az/inventory-from-az.json")
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	composed, err := Parse(azDocument(t))
	if err != nil {
		t.Fatal(err)
	}
	fromFile.VMs[0].Provider = composed.VMs[0].Provider
	if !reflect.DeepEqual(fromFile, composed) {
		t.Errorf("inventory-from-az.json differs from the fixtures it is made of")
	}
}
