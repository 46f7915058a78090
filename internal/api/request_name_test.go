package api_test

import (
	"strings"
	"testing"
)

// A short request may name its VM as vm list shows it (any case): the
// server resolves the name itself, so the CLI needs one call. A name no
// VM has is a 404 naming "vm", and changes nothing.
func TestShortRequestByName(t *testing.T) {
	e := newEnv(t)
	if code, body := e.do("PUT", polURL, azurePolicyBody(web01, 22)); code != 200 {
		t.Fatalf("PUT = %d %v", code, body)
	}
	for _, name := range []string{"web-01", "WEB-01"} {
		code, body := e.do("POST", "/drawbridge/v1/requests", `{"vm":"`+name+`","ports":[22],"duration":"1h","source":"198.18.0.7"}`)
		if code != 202 {
			t.Fatalf("request by name %q = %d %v", name, code, body)
		}
		vms, _ := body["virtualMachines"].([]any)
		if len(vms) != 1 || !strings.EqualFold(vms[0].(map[string]any)["id"].(string), web01) {
			t.Fatalf("request by name %q granted on %v, want %s", name, vms, web01)
		}
	}
	before := e.snapshot()
	code, body := e.do("POST", "/drawbridge/v1/requests", `{"vm":"web-99","ports":[22],"duration":"1h","source":"198.18.0.7"}`)
	if code != 404 {
		t.Fatalf("request for an unknown name = %d %v, want 404", code, body)
	}
	if _, target, msg := errorOf(t, body); target != "vm" || !strings.Contains(msg, `no virtual machine "web-99"`) {
		t.Errorf("target %q message %q; want target vm naming web-99", target, msg)
	}
	if e.snapshot() != before {
		t.Error("state changed")
	}
}
