package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
)

// web-01's policy guards port 22 for UDP only while 22/TCP is reachable from
// the internet. The fix used to report "extended … Succeeded" and change
// nothing (ports were merged by number only); now the entry's protocol
// widens to * and says so, and web-01 becomes healthy.
func TestFixWidensAnotherProtocolsPort(t *testing.T) {
	e := newEnv(t)
	udp := strings.Replace(azurePolicyBody(web01, 22), `"protocol": "*"`, `"protocol": "UDP"`, 1)
	if code, body := e.do("PUT", polURL, udp); code != 200 {
		t.Fatalf("PUT = %d %v", code, body)
	}
	if got := statuses(e.assessment("/drawbridge/v1/assessment"))["web-01"]; got != "Unhealthy" {
		t.Fatalf("web-01 with a UDP-only policy is %s, want Unhealthy", got)
	}
	status, body := e.do("POST", "/drawbridge/v1/assessment/fix", `{"vms":["`+web01+`"]}`)
	if status != http.StatusOK {
		t.Fatalf("fix: %d %v", status, body)
	}
	var fix api.AssessmentFixResponse
	j, _ := json.Marshal(body)
	_ = json.Unmarshal(j, &fix)
	if len(fix.Policies) != 1 || fix.Policies[0].Unchanged || len(fix.Policies[0].Widened) != 1 || !strings.Contains(fix.Policies[0].Widened[0], "port 22") {
		t.Fatalf("fix policies = %+v, want one policy with port 22 widened", fix.Policies)
	}
	if got := statuses(e.assessment("/drawbridge/v1/assessment"))["web-01"]; got != "Healthy" {
		t.Fatalf("after the fix web-01 is %s, want Healthy", got)
	}
	_, pol := e.do("GET", polURL, "")
	if !strings.Contains(mustJSON(pol), `"number":22,"protocol":"*"`) {
		t.Errorf("policy after the fix: %s, want port 22 protocol *", mustJSON(pol))
	}
}
