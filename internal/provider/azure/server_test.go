package azure_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/cloudsim/armsim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/azure"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/server"
)

// TestServerEndToEnd runs a drawbridge server whose VMs come from discovery
// and use provider "azure" against the wire simulator: a request opens the
// port in the simulated Azure NSG, a deny rule deleted behind drawbridge's
// back is re-created by the next resync, and revoking and disabling put the
// NSG back exactly.
func TestServerEndToEnd(t *testing.T) {
	ctx := context.Background()
	s := startSim(t, armsim.Options{PageSize: 3})
	s.Load(inventory.Sample())
	found, err := azure.Discover(ctx, armsim.StaticToken("t"), s.ClientOptions(), azure.Scope{Subscription: inventory.SampleSubscription})
	if err != nil {
		t.Fatal(err)
	}
	const resync = 200 * time.Millisecond
	srv, err := server.Start(ctx, server.Config{Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "db"), Insecure: true,
		ResyncInterval: resync, ExtraProviders: jit.ProviderMap{inventory.ProviderAzure: newProvider(t, s)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := client.New(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(found)
	if _, err := c.ApplyInventory(ctx, doc); err != nil {
		t.Fatal(err)
	}
	rg := "/subscriptions/" + inventory.SampleSubscription + "/resourceGroups/" + inventory.SampleResourceGroup
	vm := inventory.VM{ID: rg + "/providers/Microsoft.Compute/virtualMachines/web-01", Name: "web-01"}
	nsgID := rg + "/providers/Microsoft.Network/networkSecurityGroups/web-01-nsg"
	before, _ := s.NSG(nsgID)

	policy := map[string]any{"properties": map[string]any{"virtualMachines": []any{map[string]any{"id": vm.ID,
		"ports": []any{map[string]any{"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}}}}}}
	pb, _ := json.Marshal(policy)
	polID := rg + "/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"
	if _, err := c.PutPolicyRaw(ctx, polID, pb); err != nil {
		t.Fatal(err)
	}
	deny := sim.DenyRuleName(vm, 22, netrule.Tcp)
	if !hasRule(s, nsgID, deny) {
		t.Fatalf("no deny rule %s in the simulated NSG after enabling JIT", deny)
	}
	if _, err := c.Request(ctx, api.SimpleRequest{VM: vm.ID, Ports: []int{22}, Duration: "PT1H", Source: "198.18.0.77", Justification: "e2e"}); err != nil {
		t.Fatal(err)
	}
	grants, err := c.Grants(ctx, vm.ID, true)
	if err != nil || len(grants) != 1 {
		t.Fatalf("grants: %v %v", grants, err)
	}
	allow := sim.AllowRuleName(vm.ID, grants[0].ID)
	if !hasRule(s, nsgID, allow) {
		t.Fatalf("no allow rule %s after the request", allow)
	}

	// Drift: someone deletes JIT's deny rule in Azure.
	s.DeleteRule(nsgID, deny)
	deadline := time.Now().Add(10 * resync)
	for !hasRule(s, nsgID, deny) {
		if time.Now().After(deadline) {
			t.Fatalf("deny rule not re-created within %s", 10*resync)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if _, err := c.Revoke(ctx, grants[0].ID); err != nil {
		t.Fatal(err)
	}
	if hasRule(s, nsgID, allow) {
		t.Errorf("allow rule still present after revoke")
	}
	if err := c.DeletePolicy(ctx, polID); err != nil {
		t.Fatal(err)
	}
	after, _ := s.NSG(nsgID)
	if !reflect.DeepEqual(after.SecurityRules, before.SecurityRules) {
		t.Errorf("NSG after disable\n got %+v\nwant %+v", after.SecurityRules, before.SecurityRules)
	}
}

func hasRule(s *armsim.Server, nsgID, name string) bool {
	n, _ := s.NSG(nsgID)
	return slices.ContainsFunc(n.SecurityRules, func(r netrule.SecurityRule) bool { return r.Name == name })
}
