package console_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// TestStatusPageSaysWhereToConnect: a request on jump-01, reached through
// the classic Azure Firewall edge-fw, shows on its status page (and in the
// JSON the page polls) the firewall address and port to connect to.
func TestStatusPageSaysWhereToConnect(t *testing.T) {
	e := startEnv(t)
	ctx := jit.WithActor(context.Background(), jit.Actor{Principal: "setup"})
	if err := e.srv.Service.ApplyInventory(ctx, inventory.SampleClassicFirewall()); err != nil {
		t.Fatal(err)
	}
	jump := rgScope + "/providers/Microsoft.Compute/virtualMachines/jump-01"
	pol := rgScope + "/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/jump"
	if _, err := e.srv.Service.PutPolicy(ctx, jit.Policy{ID: pol, Name: "jump", Location: "westeurope", VirtualMachines: []jit.VMPolicy{{
		ID: jump, Ports: []jit.PortPolicy{{Number: 22, Protocol: netrule.Tcp, AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}}}}}); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.signIn(e.admin)
	form := url.Values{"vm": {jump}, "port": {"22"}, "source": {"198.18.0.9"}, "duration": {"1h"}, "csrf": {b.csrf("/console/request?vm=" + url.QueryEscape(jump))}}
	st, body := b.post("/console/request", form)
	if st != 200 || !strings.Contains(body, `class="state-Active"`) {
		t.Fatalf("request: %d %s", st, body)
	}
	if !strings.Contains(body, `connect to <code>198.18.0.20:50000</code>`) {
		t.Errorf("status page lacks where to connect:\n%s", body)
	}
	reqs, err := e.srv.Service.ListGrants(context.Background(), jit.GrantFilter{VMID: jump})
	if err != nil || len(reqs) != 1 {
		t.Fatalf("grants of jump-01: %v %v", reqs, err)
	}
	if _, js := b.get("/console/requests/" + reqs[0].RequestID + "/status?policy=" + url.QueryEscape(pol)); !strings.Contains(js, `"connectTo":"198.18.0.20:50000"`) {
		t.Errorf("status JSON lacks connectTo: %s", js)
	}
}
