package api_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/clock"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
)

// TestGrantThroughFirewallSaysWhereToConnect: a grant on jump-01, behind
// the classic Azure Firewall edge-fw whose port 22 a user's rule takes,
// tells its requester to connect to the firewall's public IP on 50000
// (connectTo, and the specification's mappedPort) in the initiate answer,
// the policy's requests, the short-form request and the grants list; a
// grant on a VM reached directly says nothing.
func TestGrantThroughFirewallSaysWhereToConnect(t *testing.T) {
	st := memstore.New()
	simProv := sim.New(st)
	n := 0
	svc := jit.NewService(jit.Config{
		Store: st, Providers: jit.ProviderMap{inventory.ProviderSim: simProv}, Clock: clock.Real{},
		NewID: func() string { n++; return fmt.Sprintf("g%04d", n) },
	})
	for _, inv := range []inventory.Inventory{inventory.Sample(), inventory.SampleClassicFirewall()} {
		if err := svc.ApplyInventory(context.Background(), inv); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(validated(t, api.New(api.Config{Service: svc, Network: simProv})))
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv}
	jump := azVM + "jump-01"
	jumpPol := "/subscriptions/" + sub + "/resourceGroups/demo-rg/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/jump"
	for vm, pol := range map[string]string{jump: jumpPol, web01: polURL} {
		polBody := azurePolicyBody(vm, 22)
		if vm == jump { // and 2222
			polBody = strings.Replace(polBody, `"maxRequestAccessDuration": "PT3H"}`, `"maxRequestAccessDuration": "PT3H"}, {"number": 2222, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}`, 1)
		}
		if code, body := e.do("PUT", pol+"?api-version=2020-01-01", polBody); code != 200 {
			t.Fatalf("PUT policy for %s = %d %v", vm, code, body)
		}
		initiate := fmt.Sprintf(`{"virtualMachines":[{"id":%q,"ports":[{"number":22,"endTimeUtc":%q,"allowedSourceAddressPrefix":"198.18.0.7"}]}]}`,
			vm, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		code, body := e.do("POST", pol+"/initiate?api-version=2020-01-01", initiate)
		if code != 202 {
			t.Fatalf("initiate on %s = %d %v", vm, code, body)
		}
		port := body["virtualMachines"].([]any)[0].(map[string]any)["ports"].([]any)[0].(map[string]any)
		want := map[string]any{"applied": true, "connectTo": "198.18.0.20:50000", "mappedPort": float64(50000)}
		if vm != jump {
			want = map[string]any{"applied": true, "connectTo": nil, "mappedPort": nil}
		}
		for k, v := range want {
			if port[k] != v {
				t.Errorf("initiate on %s: %s = %v, want %v (port %v)", vm, k, port[k], v, port)
			}
		}
	}
	_, grants := e.do("GET", "/drawbridge/v1/grants?vm="+jump, "")
	gs := grants["value"].([]any)
	if len(gs) != 1 || gs[0].(map[string]any)["connectTo"] != "198.18.0.20:50000" {
		t.Errorf("grants of jump-01: %v", gs)
	}
	_, pol := e.do("GET", jumpPol, "")
	reqs := pol["properties"].(map[string]any)["requests"].([]any)
	p0 := reqs[0].(map[string]any)["virtualMachines"].([]any)[0].(map[string]any)["ports"].([]any)[0].(map[string]any)
	if len(reqs) != 1 || p0["connectTo"] != "198.18.0.20:50000" || p0["mappedPort"] != float64(50000) {
		t.Errorf("policy's requests: %v", reqs)
	}
	// A second grant, in the short form, for 2222: free on the public IP,
	// so the DNAT rule listens on the granted port itself.
	code, body := e.do("POST", "/drawbridge/v1/requests", `{"vm":"jump-01","ports":[2222],"duration":"PT1H","source":"198.18.0.7"}`)
	if code != 202 && code != 200 {
		t.Fatalf("short-form request = %d %v", code, body)
	}
	port := body["virtualMachines"].([]any)[0].(map[string]any)["ports"].([]any)[0].(map[string]any)
	if port["connectTo"] != "198.18.0.20:2222" || port["mappedPort"] != float64(2222) {
		t.Errorf("second grant through the firewall: %v", port)
	}
}
