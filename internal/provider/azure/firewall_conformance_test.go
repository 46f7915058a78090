package azure_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"

	"github.com/drawbridge/drawbridge/internal/cloudsim/armsim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/provider/azure"
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
