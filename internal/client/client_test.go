package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/server"
)

func startServer(t *testing.T) *Client {
	t.Helper()
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "db"), SampleInventory: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c, err := New(srv.URL, srv.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPolicyRequestRevokeThroughServer(t *testing.T) {
	c := startServer(t)
	ctx := context.Background()
	vms, err := c.VMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var web api.VMSummary
	for _, vm := range vms {
		if vm.Name == "web-01" {
			web = vm
		}
	}
	if web.ID == "" {
		t.Fatalf("no web-01 in %+v", vms)
	}
	id := jit.PolicyID("00000000-0000-0000-0000-000000000001", "demo-rg", web.Location, "default")
	p, err := c.PutPolicy(ctx, id, api.PolicyResource{Kind: "Basic", Properties: api.PolicyProperties{VirtualMachines: []jit.VMPolicy{{
		ID: web.ID, Ports: []jit.PortPolicy{{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT1H"}},
	}}}})
	if err != nil || p.Properties.ProvisioningState != jit.ProvisioningSucceeded {
		t.Fatalf("PutPolicy: %v %+v", err, p)
	}
	enabled, err := c.Network(ctx, web.ID)
	if err != nil {
		t.Fatal(err)
	}
	req, err := c.Request(ctx, api.SimpleRequest{VM: web.ID, Ports: []int{22}, Duration: "10m", Source: "198.18.0.3"})
	if err != nil {
		t.Fatal(err)
	}
	gid := req.VirtualMachines[0].Ports[0].GrantID
	g, err := c.Grant(ctx, web.ID, gid)
	if err != nil || g.Status != jit.StatusInitiated {
		t.Fatalf("Grant: %v %+v", err, g)
	}
	g, err = c.Revoke(ctx, gid)
	if err != nil || g.Status != jit.StatusRevoked || g.StatusReason != jit.ReasonUserRequested {
		t.Fatalf("Revoke: %v %+v", err, g)
	}
	after, err := c.Network(ctx, web.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.NetworkSecurityGroups) != 1 || len(after.NetworkSecurityGroups[0].SecurityRules) != len(enabled.NetworkSecurityGroups[0].SecurityRules) {
		t.Fatalf("firewall after revoke differs from after enable: %+v", after)
	}
	if err := c.DeletePolicy(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetPolicy(ctx, id); StatusCode(err) != http.StatusNotFound {
		t.Fatalf("GetPolicy after delete: %v, want a 404 error", err)
	}
}

func TestServerErrorKeepsMessageAndStatus(t *testing.T) {
	c := startServer(t)
	_, err := c.Request(context.Background(), api.SimpleRequest{VM: "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/none", Ports: []int{22}, Duration: "1h"})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if e.StatusCode != http.StatusNotFound || e.Code != "NotFound" || e.Target != "vm" {
		t.Fatalf("error = %+v, want 404 NotFound naming vm", e)
	}
	if err.Error() != e.Message || !strings.Contains(err.Error(), "has no JIT policy") {
		t.Fatalf("Error() = %q, want the server's message", err.Error())
	}

	_, err = c.Request(context.Background(), api.SimpleRequest{VM: "", Ports: []int{22}})
	if StatusCode(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "vm is required") {
		t.Fatalf("empty VM: %v (status %d)", err, StatusCode(err))
	}
}

func TestBearerTokenAndNonJSONErrors(t *testing.T) {
	var mu sync.Mutex
	var auth []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		http.Error(w, "upstream exploded\nstack trace here", http.StatusBadGateway)
	}))
	defer ts.Close()

	c, err := New(ts.URL, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.VMs(context.Background())
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusBadGateway {
		t.Fatalf("error %v, want *Error with 502", err)
	}
	if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "upstream exploded") {
		t.Fatalf("message %q: want the first line of the body only", err.Error())
	}
	noToken, _ := New(ts.URL, "")
	_ = noToken.Health(context.Background())
	mu.Lock()
	defer mu.Unlock()
	if len(auth) != 2 || auth[0] != "Bearer s3cret" || auth[1] != "" {
		t.Fatalf("Authorization headers = %q, want [Bearer s3cret, none]", auth)
	}
}

func TestUnreachableAndBadURL(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close() // nothing listens there now
	c, err := New(url, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Health(ctx); err == nil || !strings.Contains(err.Error(), "cannot reach drawbridge server at "+url) {
		t.Fatalf("Health against a closed port: %v", err)
	}
	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://x", "http://"} {
		if _, err := New(bad, ""); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	if _, err := c.GetPolicy(ctx, "not-an-id"); err == nil || StatusCode(err) != 0 {
		t.Errorf("GetPolicy with a non-resource ID: %v", err)
	}
}
