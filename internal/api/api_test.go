package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

var (
	sub     = inventory.SampleSubscription
	azVM    = "/subscriptions/" + sub + "/resourceGroups/demo-rg/providers/Microsoft.Compute/virtualMachines/"
	web01   = azVM + "web-01"
	win01   = azVM + "win-01"
	db01    = azVM + "db-01"
	crowded = "/subscriptions/aws-111122223333/resourceGroups/us-east-1/providers/AWS.EC2/instances/i-0a1b2c3d4e5f60003"
	polURL  = "/subscriptions/" + sub + "/resourceGroups/demo-rg/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"
)

type env struct {
	t   *testing.T
	srv *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := memstore.New()
	simProv := sim.New(st)
	n := 0
	svc := jit.NewService(jit.Config{
		Store: st, Providers: jit.ProviderMap{inventory.ProviderSim: simProv}, Clock: clock.Real{},
		NewID: func() string { n++; return fmt.Sprintf("g%04d", n) },
	})
	if err := svc.ApplyInventory(context.Background(), inventory.Sample()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(validated(t, api.New(api.Config{Service: svc, Network: simProv})))
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv}
}

func (e *env) do(method, path, body string) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			e.t.Fatalf("%s %s: response is not JSON: %s", method, path, data)
		}
	}
	return resp.StatusCode, out
}

// snapshot captures everything a failed call must leave unchanged.
func (e *env) snapshot() string {
	var b strings.Builder
	for _, vm := range []string{web01, win01, crowded} {
		_, v := e.do("GET", "/drawbridge/v1/network?vm="+vm, "")
		j, _ := json.Marshal(v)
		b.Write(j)
	}
	_, g := e.do("GET", "/drawbridge/v1/grants", "")
	j, _ := json.Marshal(g)
	b.Write(j)
	_, p := e.do("GET", "/drawbridge/v1/policies", "")
	j, _ = json.Marshal(p)
	b.Write(j)
	return b.String()
}

// azurePolicyBody is shaped like Azure's own CreateOrUpdate example,
// including the read-only fields a client echoes back.
func azurePolicyBody(vmID string, port int) string {
	return fmt.Sprintf(`{
  "kind": "Basic",
  "id": %q,
  "name": "default",
  "type": "Microsoft.Security/locations/jitNetworkAccessPolicies",
  "location": "westeurope",
  "properties": {
    "virtualMachines": [
      {
        "id": %q,
        "ports": [
          {"number": %d, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}
        ]
      }
    ],
    "requests": [],
    "provisioningState": "Succeeded"
  }
}`, polURL, vmID, port)
}

func errorOf(t *testing.T, body map[string]any) (code, target, msg string) {
	t.Helper()
	e, ok := body["error"].(map[string]any)
	if !ok {
		t.Fatalf("no Azure error envelope in %v", body)
	}
	code, _ = e["code"].(string)
	target, _ = e["target"].(string)
	msg, _ = e["message"].(string)
	return
}

func TestAzurePolicyLifecycle(t *testing.T) {
	e := newEnv(t)
	code, body := e.do("PUT", polURL+"?api-version=2020-01-01", azurePolicyBody(web01, 22))
	if code != 200 {
		t.Fatalf("PUT = %d %v", code, body)
	}
	props := body["properties"].(map[string]any)
	if props["provisioningState"] != "Succeeded" || body["type"] != "Microsoft.Security/locations/jitNetworkAccessPolicies" {
		t.Fatalf("PUT response = %v", body)
	}

	initiate := fmt.Sprintf(`{"virtualMachines":[{"id":%q,"ports":[{"number":22,"endTimeUtc":%q,"allowedSourceAddressPrefix":"198.18.0.7"}]}],"justification":"incident 42"}`,
		web01, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	code, body = e.do("POST", polURL+"/initiate?api-version=2020-01-01", initiate)
	if code != 202 {
		t.Fatalf("initiate = %d %v", code, body)
	}
	ports := body["virtualMachines"].([]any)[0].(map[string]any)["ports"].([]any)
	port := ports[0].(map[string]any)
	if port["status"] != "Initiated" || port["statusReason"] != "UserRequested" || port["applied"] != true {
		t.Fatalf("port = %v", port)
	}
	grantID := port["grantId"].(string)

	// The NSG now holds an allow rule for the source.
	_, view := e.do("GET", "/drawbridge/v1/network?vm="+web01, "")
	if !strings.Contains(mustJSON(view), "198.18.0.7") {
		t.Fatalf("allow rule missing from view: %s", mustJSON(view))
	}

	// GET shows the request; lists at every level find the policy.
	_, body = e.do("GET", polURL, "")
	reqs := body["properties"].(map[string]any)["requests"].([]any)
	if len(reqs) != 1 || reqs[0].(map[string]any)["justification"] != "incident 42" {
		t.Fatalf("requests = %v", reqs)
	}
	for _, path := range []string{
		"/subscriptions/" + sub + "/providers/Microsoft.Security/jitNetworkAccessPolicies",
		"/subscriptions/" + sub + "/resourceGroups/demo-rg/providers/Microsoft.Security/jitNetworkAccessPolicies",
		"/subscriptions/" + sub + "/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies",
		"/subscriptions/" + sub + "/resourcegroups/demo-rg/providers/microsoft.security/locations/westeurope/jitnetworkaccesspolicies",
	} {
		code, body := e.do("GET", path, "")
		if code != 200 || len(body["value"].([]any)) != 1 {
			t.Errorf("GET %s = %d %v", path, code, body)
		}
	}
	code, body = e.do("GET", "/subscriptions/other/providers/Microsoft.Security/jitNetworkAccessPolicies", "")
	if code != 200 || len(body["value"].([]any)) != 0 {
		t.Errorf("other subscription lists %v", body)
	}

	// Revoke restores the NSG exactly as it was after enabling.
	code, body = e.do("POST", "/drawbridge/v1/grants/"+grantID+"/revoke", "")
	if code != 200 || body["statusReason"] != "UserRequested" || body["status"] != "Revoked" {
		t.Fatalf("revoke = %d %v", code, body)
	}
	_, after := e.do("GET", "/drawbridge/v1/network?vm="+web01, "")
	if strings.Contains(mustJSON(after), "198.18.0.7") {
		t.Fatalf("allow rule still present after revoke")
	}

	code, _ = e.do("DELETE", polURL, "")
	if code != 200 {
		t.Fatalf("DELETE = %d", code)
	}
	code, _ = e.do("GET", polURL, "")
	if code != 404 {
		t.Fatalf("GET after delete = %d", code)
	}
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	if code, body := e.do("PUT", polURL, azurePolicyBody(web01, 22)); code != 200 {
		t.Fatalf("PUT = %d %v", code, body)
	}
	end := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	initiate := func(vm string, port int, src, end string) string {
		return fmt.Sprintf(`{"virtualMachines":[{"id":%q,"ports":[{"number":%d,"endTimeUtc":%q,"allowedSourceAddressPrefix":%q}]}]}`, vm, port, end, src)
	}
	cases := []struct {
		name, method, path, body string
		status                   int
		target, contains         string
	}{
		{"malformed json", "PUT", polURL, `{"properties": {`, 400, "", "request body"},
		{"unknown field", "PUT", polURL, `{"properties":{"virtualMachines":[]},"colour":"red"}`, 400, "", "colour"},
		{"wrong type", "PUT", polURL, `{"properties":{"virtualMachines":[{"id":"x","ports":[{"number":"twenty-two"}]}]}}`, 400, "properties.virtualMachines.ports.number", "number"},
		{"port out of range", "PUT", polURL, azurePolicyBody(web01, 70000), 400, "properties.virtualMachines[0].ports[0].number", "70000"},
		{"unknown vm", "PUT", polURL, azurePolicyBody(azVM+"nope", 22), 404, "properties.virtualMachines[0].id", "not in the inventory"},
		{"vm without nsg", "PUT", strings.Replace(polURL, "default", "db", 1), strings.Replace(azurePolicyBody(db01, 22), `"name": "default"`, `"name": "db"`, 1), 409, "properties.virtualMachines[0].id", "db-01"},
		{"location mismatch", "PUT", polURL, strings.Replace(azurePolicyBody(web01, 22), `"location": "westeurope"`, `"location": "eastus"`, 1), 400, "location", "eastus"},
		{"initiate unknown policy", "POST", strings.Replace(polURL, "default", "nope", 1) + "/initiate", initiate(web01, 22, "198.18.0.7", end), 404, "", "not found"},
		{"port not in policy", "POST", polURL + "/initiate", initiate(web01, 3389, "198.18.0.7", end), 400, "virtualMachines[0].ports[0].number", "3389"},
		{"end in the past", "POST", polURL + "/initiate", initiate(web01, 22, "198.18.0.7", "2020-01-01T00:00:00Z"), 400, "virtualMachines[0].ports[0].endTimeUtc", "in the future"},
		{"end past maximum", "POST", polURL + "/initiate", initiate(web01, 22, "198.18.0.7", time.Now().Add(4*time.Hour).UTC().Format(time.RFC3339)), 400, "virtualMachines[0].ports[0].endTimeUtc", "PT3H"},
		{"bad source", "POST", polURL + "/initiate", initiate(web01, 22, "not-an-ip", end), 400, "virtualMachines[0].ports[0].allowedSourceAddressPrefix", "not-an-ip"},
		{"revoke unknown grant", "POST", "/drawbridge/v1/grants/nope/revoke", "", 404, "grantId", "nope"},
		{"network view without vm", "GET", "/drawbridge/v1/network", "", 400, "vm", "required"},
		{"inventory with bad priority", "POST", "/drawbridge/v1/inventory", `{"networkSecurityGroups":[{"id":"/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/networkSecurityGroups/n","name":"n","securityRules":[{"name":"r","priority":5000,"direction":"Inbound","access":"Allow","protocol":"Tcp","sourceAddressPrefix":"*","destinationAddressPrefix":"*","destinationPortRange":"22"}]}]}`, 400, "", "priority"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot()
			code, body := e.do(c.method, c.path, c.body)
			if code != c.status {
				t.Fatalf("status = %d, want %d: %v", code, c.status, body)
			}
			_, target, msg := errorOf(t, body)
			if c.target != "" && target != c.target {
				t.Errorf("target = %q, want %q (%s)", target, c.target, msg)
			}
			if !strings.Contains(msg, c.contains) {
				t.Errorf("message %q does not mention %q", msg, c.contains)
			}
			if after := e.snapshot(); after != before {
				t.Errorf("state changed by a refused call")
			}
		})
	}
}

func TestSourceOutsideAllowedIs403(t *testing.T) {
	e := newEnv(t)
	body := strings.Replace(azurePolicyBody(web01, 22), `"allowedSourceAddressPrefix": "*"`, `"allowedSourceAddressPrefixes": ["198.18.0.0/24"]`, 1)
	if code, b := e.do("PUT", polURL, body); code != 200 {
		t.Fatalf("PUT = %d %v", code, b)
	}
	before := e.snapshot()
	code, resp := e.do("POST", "/drawbridge/v1/requests", fmt.Sprintf(`{"vm":%q,"ports":[22],"duration":"PT1H","source":"198.18.1.1"}`, web01))
	if code != 403 {
		t.Fatalf("status = %d %v", code, resp)
	}
	if e.snapshot() != before {
		t.Fatal("state changed")
	}
	// Without a source the caller's own address (loopback here) is used,
	// and it is outside the allowed range too.
	if code, resp := e.do("POST", "/drawbridge/v1/requests", fmt.Sprintf(`{"vm":%q,"ports":[22],"duration":"PT1H"}`, web01)); code != 403 || !strings.Contains(mustJSON(resp), "127.0.0.1") {
		t.Fatalf("caller-address request = %d %v", code, resp)
	}
}

func TestAWSNoFreeSecurityGroupSlotIs409(t *testing.T) {
	e := newEnv(t)
	pol := strings.Replace(polURL, "westeurope", "us-east-1", 1)
	pol = strings.Replace(pol, "/subscriptions/"+sub+"/resourceGroups/demo-rg", "/subscriptions/aws-111122223333/resourceGroups/us-east-1", 1)
	body := strings.Replace(azurePolicyBody(crowded, 22), `"location": "westeurope"`, `"location": "us-east-1"`, 1)
	if code, b := e.do("PUT", pol, body); code != 200 {
		t.Fatalf("PUT = %d %v", code, b)
	}
	before := e.snapshot()
	code, resp := e.do("POST", "/drawbridge/v1/requests", fmt.Sprintf(`{"vm":%q,"ports":[22],"duration":"1m","source":"198.18.0.9"}`, crowded))
	_, _, msg := errorOf(t, resp)
	if code != 409 || !strings.Contains(msg, "security group") {
		t.Fatalf("status = %d %q", code, msg)
	}
	if e.snapshot() != before {
		t.Fatal("state changed")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A listing's limit must be a non-negative integer: 400 naming "limit".
func TestListingLimitValidated(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/drawbridge/v1/grants?limit=-1", "/drawbridge/v1/grants?limit=x"} {
		code, body := e.do("GET", path, "")
		if _, target, msg := errorOf(t, body); code != 400 || target != "limit" {
			t.Errorf("GET %s = %d, target %q (%s); want 400 naming limit", path, code, target, msg)
		}
	}
	if code, _ := e.do("GET", "/drawbridge/v1/grants?limit=2", ""); code != 200 {
		t.Errorf("GET grants?limit=2 = %d", code)
	}
}
