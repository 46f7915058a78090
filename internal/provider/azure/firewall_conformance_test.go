package azure_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"

	"github.com/drawbridge/drawbridge/internal/cloudsim/armsim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/azure"
	"github.com/drawbridge/drawbridge/internal/provider/providertest"
)

// Firewall reads a firewall out of the simulator's state through the same
// conversion the provider uses on what the SDK returns.
func (c wireCloud) Firewall(t testing.TB, id string) inventory.Firewall {
	t.Helper()
	d, ok := c.s.Doc(id)
	if !ok {
		t.Fatalf("firewall %s not in the simulator", id)
	}
	var fw armnetwork.AzureFirewall
	b, _ := json.Marshal(d)
	if err := json.Unmarshal(b, &fw); err != nil {
		t.Fatal(err)
	}
	pips := map[string]netip.Addr{}
	var prefix netip.Prefix
	for _, ipc := range fw.Properties.IPConfigurations {
		if ipc.Properties.PublicIPAddress != nil {
			pd, _ := c.s.Doc(*ipc.Properties.PublicIPAddress.ID)
			a, _ := netip.ParseAddr(pd["properties"].(map[string]any)["ipAddress"].(string))
			pips[inventory.Key(*ipc.Properties.PublicIPAddress.ID)] = a
		}
		if ipc.Properties.Subnet != nil {
			sd, _ := c.s.Doc(*ipc.Properties.Subnet.ID)
			prefix, _ = netip.ParsePrefix(sd["properties"].(map[string]any)["addressPrefix"].(string))
		}
	}
	out, err := azure.FirewallFromARM(&fw, pips, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// AddNatCollection edits the firewall as someone else would; interleaved,
// the edit lands when drawbridge's next PUT of it arrives, after its GET,
// so that its If-Match is stale.
func (c wireCloud) AddNatCollection(t testing.TB, id string, col inventory.NatRuleCollection, interleaved bool) {
	t.Helper()
	add := func() {
		if !c.s.EditFirewall(id, func(p map[string]any) {
			cs, _ := p["natRuleCollections"].([]any)
			p["natRuleCollections"] = append(cs, armsim.NatCollectionDoc(col))
		}) {
			t.Errorf("firewall %s not in the simulator", id)
		}
	}
	if !interleaved {
		add()
		return
	}
	c.s.BeforeFirewallWrite(func(context.Context, string) { add() })
	t.Cleanup(func() {
		// The edit must have met a PUT, else the test proved nothing.
		if n := preconditionFailures(c.s, id); n == 0 {
			t.Errorf("no firewall PUT met the concurrent edit (no 412 recorded)")
		}
	})
}

func preconditionFailures(s *armsim.Server, id string) int {
	n := 0
	for _, c := range s.Calls() {
		if c.Method == "PUT" && c.Status == 412 && strings.EqualFold(c.Path, id) {
			n++
		}
	}
	return n
}

// TestFirewallRawDocumentRestored: after enable, a grant and its expiry,
// the firewall's whole ARM document is what it was (everything the
// provider PUT back came from its GET through the SDK's types: sku,
// threat intel mode, ipConfigurations, every user collection), etag and
// provisioningState aside.
func TestFirewallRawDocumentRestored(t *testing.T) {
	s := startSim(t, armsim.Options{})
	inv := providertest.Inventory()
	s.Load(inv)
	strip := func(d map[string]any) string {
		delete(d, "etag")
		delete(d["properties"].(map[string]any), "provisioningState")
		b, _ := json.Marshal(d)
		return string(b)
	}
	before, _ := s.Doc(providertest.FirewallID)
	want := strip(before)
	vm := inv.VMs[len(inv.VMs)-1]
	p := newProvider(t, s)
	src, _ := jit.ParseSource("198.51.100.7")
	guarded := []jit.GuardedPort{{Port: 22, Protocol: netrule.Tcp}}
	for _, d := range []jit.Desired{{VMID: vm.ID, Guarded: guarded},
		{VMID: vm.ID, Guarded: guarded, Grants: []jit.DesiredGrant{{GrantID: "g1", Port: 22, Protocol: netrule.Tcp, Source: src, End: time.Now().Add(time.Hour)}}},
		{VMID: vm.ID, Guarded: guarded}} {
		if _, err := p.Apply(context.Background(), vm, d); err != nil {
			t.Fatal(err)
		}
	}
	puts := 0
	for _, c := range s.Calls() {
		if c.Method == "PUT" && strings.EqualFold(c.Path, providertest.FirewallID) {
			puts++
		}
	}
	if puts != 2 {
		t.Errorf("%d firewall PUTs, want 2 (the grant's and the expiry's)", puts)
	}
	after, _ := s.Doc(providertest.FirewallID)
	if got := strip(after); got != want {
		t.Errorf("firewall document after the grant ended\n got %s\nwant %s", got, want)
	}
}
