package api_test

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/assess"
)

func (e *env) assessment(path string) api.Assessment {
	e.t.Helper()
	status, body := e.do("GET", path, "")
	if status != http.StatusOK {
		e.t.Fatalf("GET %s: %d %v", path, status, body)
	}
	var a api.Assessment
	j, _ := json.Marshal(body)
	if err := json.Unmarshal(j, &a); err != nil {
		e.t.Fatal(err)
	}
	return a
}

func statuses(a api.Assessment) map[string]string {
	out := map[string]string{}
	for _, r := range a.Results {
		s := string(r.Status)
		if r.Reason != "" {
			s += " " + string(r.Reason)
		}
		out[r.Name] = s
	}
	return out
}

func TestAssessmentAndFix(t *testing.T) {
	e := newEnv(t)
	a := e.assessment("/drawbridge/v1/assessment")
	if a.Recommendation.Title != "Management ports of virtual machines should be protected with just-in-time network access control" || a.Recommendation.Severity != "High" {
		t.Errorf("recommendation = %+v", a.Recommendation)
	}
	want := map[string]string{
		"web-01": "Unhealthy", "win-01": "Unhealthy", "bastion": "Unhealthy", "crowded": "Unhealthy",
		"app-01": "Healthy", "worker": "Healthy",
		"db-01": "NotApplicable NoNetworkSecurityGroup", "fw-01": "NotApplicable FirewallManagerPolicy",
	}
	if got := statuses(a); !reflect.DeepEqual(got, want) {
		t.Errorf("before the fix: %v\nwant %v", got, want)
	}
	if a.Summary != (assess.Summary{Healthy: 2, Unhealthy: 4, NotApplicable: 2}) {
		t.Errorf("summary = %+v", a.Summary)
	}
	for _, r := range a.Results {
		if r.Name == "web-01" && (len(r.Exposures) != 1 || r.Exposures[0].Port != 22 || r.Exposures[0].Rule.Rule != "AllowSSHFromInternet") {
			t.Errorf("web-01 exposures = %+v, want port 22 by AllowSSHFromInternet", r.Exposures)
		}
	}
	if len(a.Fix.VirtualMachines) != 4 || len(a.Views.NotConfigured) != 6 || len(a.Views.Unsupported) != 2 || len(a.Views.Configured) != 0 {
		t.Errorf("fix plan %d VMs (want 4), views %d/%d/%d (want 0 configured, 6 not configured, 2 unsupported)",
			len(a.Fix.VirtualMachines), len(a.Views.Configured), len(a.Views.NotConfigured), len(a.Views.Unsupported))
	}

	// Scope: only the AWS VMs.
	aws := e.assessment("/drawbridge/v1/assessment?scope=/subscriptions/aws-111122223333")
	if aws.Summary != (assess.Summary{Healthy: 1, Unhealthy: 2}) {
		t.Errorf("AWS scope summary = %+v, want 1 healthy, 2 unhealthy", aws.Summary)
	}

	// Fixing a VM that is not unhealthy is refused and changes nothing.
	if status, _ := e.do("POST", "/drawbridge/v1/assessment/fix", `{"vms":["`+db01+`"]}`); status != http.StatusConflict {
		t.Errorf("fix of db-01: status %d, want 409", status)
	}
	if status, _ := e.do("GET", "/drawbridge/v1/policies", ""); status != http.StatusOK {
		t.Fatal(status)
	}

	status, body := e.do("POST", "/drawbridge/v1/assessment/fix", "")
	if status != http.StatusOK {
		t.Fatalf("fix: %d %v", status, body)
	}
	var fix api.AssessmentFixResponse
	j, _ := json.Marshal(body)
	_ = json.Unmarshal(j, &fix)
	if len(fix.Policies) != 2 || !fix.Policies[0].Created || fix.Policies[0].ID != "/subscriptions/"+sub+"/resourceGroups/demo-rg/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default" {
		t.Errorf("policies = %+v, want the two default policies created", fix.Policies)
	}
	after := e.assessment("/drawbridge/v1/assessment")
	want["web-01"], want["win-01"], want["bastion"], want["crowded"] = "Healthy", "Healthy", "Healthy", "Healthy"
	if got := statuses(after); !reflect.DeepEqual(got, want) {
		t.Errorf("after the fix: %v\nwant %v", got, want)
	}
	for _, r := range after.Results {
		// The seed: web-01's own allow rule keeps priority over JIT's deny rule.
		if r.Name == "web-01" && (len(r.StillReachable) != 1 || r.StillReachable[0].Rule.Rule != "AllowSSHFromInternet") {
			t.Errorf("web-01 stillReachable = %+v, want port 22 by AllowSSHFromInternet", r.StillReachable)
		}
	}
	if len(after.Views.Configured) != 4 || len(after.Fix.VirtualMachines) != 0 {
		t.Errorf("after: %d configured (want 4), fix plan %d VMs (want 0)", len(after.Views.Configured), len(after.Fix.VirtualMachines))
	}

	// A request shows in the Configured view: one approved request, the user.
	if status, body := e.do("POST", "/drawbridge/v1/requests", `{"vm":"`+web01+`","ports":[22],"duration":"PT1H","source":"198.18.5.5"}`); status != http.StatusOK && status != http.StatusAccepted {
		t.Fatalf("request: %d %v", status, body)
	}
	views := e.assessment("/drawbridge/v1/assessment").Views
	for _, c := range views.Configured {
		if c.Name == "web-01" && (c.ApprovedRequests != 1 || c.LastUser != "local" || c.LastAccess.IsZero()) {
			t.Errorf("web-01 configured row = %+v, want 1 approved request by local", c)
		}
	}

	// A second fix finds nothing to do.
	status, body = e.do("POST", "/drawbridge/v1/assessment/fix", "{}")
	j, _ = json.Marshal(body)
	fix = api.AssessmentFixResponse{}
	_ = json.Unmarshal(j, &fix)
	if status != http.StatusOK || len(fix.Policies) != 0 {
		t.Errorf("second fix: %d, %d policies written, want none", status, len(fix.Policies))
	}
}

func TestAssessmentBadInput(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/drawbridge/v1/assessment?scope=not-an-id", ""},
		{"POST", "/drawbridge/v1/assessment/fix", `{"vm":["x"]}`},
		{"POST", "/drawbridge/v1/assessment/fix", `{"policyName":"a b"}`},
	} {
		if status, _ := e.do(c.method, c.path, c.body); status != http.StatusBadRequest {
			t.Errorf("%s %s %s: status %d, want 400", c.method, c.path, c.body, status)
		}
	}
	if status, body := e.do("GET", "/drawbridge/v1/policies", ""); status != http.StatusOK || len(body["value"].([]any)) != 0 {
		t.Errorf("bad fix requests must not create policies: %d %v", status, body)
	}
}
