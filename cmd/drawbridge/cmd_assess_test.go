package main

import (
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/assess"
)

func assessStatuses(a api.Assessment) map[string]assess.Status {
	out := map[string]assess.Status{}
	for _, r := range a.Results {
		out[r.Name] = r.Status
	}
	return out
}

func TestAssessAndFix(t *testing.T) {
	srv := startServer(t)
	url := srv.URL

	table := ok(t, url, "assess")
	for _, want := range []string{
		"Management ports of virtual machines should be protected with just-in-time network access control",
		"Severity: High   Healthy: 2   Unhealthy: 4   Not applicable: 2",
		"Unhealthy (4)", "Healthy (2)", "Not applicable (2)",
		"web-01-nsg/AllowSSHFromInternet (priority 1000, Allow from Internet)",
		"win-01-nsg/AllowRDPFromCorp (priority 300, Allow from 203.0.113.0/24)",
		"NoNetworkSecurityGroup", "FirewallManagerPolicy",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("assess table lacks %q:\n%s", want, table)
		}
	}
	before := decodeJSON[api.Assessment](t, ok(t, url, "assess", "-o", "json"))
	if s := assessStatuses(before); s["web-01"] != assess.Unhealthy || s["bastion"] != assess.Unhealthy || s["app-01"] != assess.Healthy || s["db-01"] != assess.NotApplicable {
		t.Errorf("statuses before the fix: %v", s)
	}
	policiesBefore := ok(t, url, "policy", "list", "-o", "json")

	// --fix without --yes: the plan, and nothing changes.
	plan := ok(t, url, "assess", "--fix")
	for _, want := range []string{"Fix plan: enable JIT on 4 VM(s)", "max duration PT3H", "web-01", "bastion", "Nothing was changed"} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan)
		}
	}
	p := decodeJSON[assess.FixPlan](t, ok(t, url, "assess", "--fix", "-o", "json"))
	if len(p.VirtualMachines) != 4 || p.VirtualMachines[0].Ports[0] != (assess.FixPort{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}) {
		t.Errorf("plan = %+v", p)
	}
	if after := ok(t, url, "policy", "list", "-o", "json"); after != policiesBefore {
		t.Errorf("--fix without --yes changed the policies:\nbefore %s\nafter %s", policiesBefore, after)
	}

	// --fix --yes --vm web-01: only web-01.
	out := ok(t, url, "assess", "--fix", "--yes", "--vm", "web-01")
	for _, want := range []string{"created", "web-01: Healthy; WARNING port 22 still reachable via web-01-nsg/AllowSSHFromInternet", "existing rules keep priority"} {
		if !strings.Contains(out, want) {
			t.Errorf("fix output lacks %q:\n%s", want, out)
		}
	}
	mid := assessStatuses(decodeJSON[api.Assessment](t, ok(t, url, "assess", "-o", "json")))
	if mid["web-01"] != assess.Healthy || mid["win-01"] != assess.Unhealthy {
		t.Errorf("after fixing web-01 only: %v", mid)
	}

	// --fix --yes: the rest; then no VM the fix covered is unhealthy.
	ok(t, url, "assess", "--fix", "--yes")
	after := decodeJSON[api.Assessment](t, ok(t, url, "assess", "-o", "json"))
	for _, vm := range p.VirtualMachines {
		if s := assessStatuses(after)[vm.Name]; s != assess.Healthy {
			t.Errorf("%s after the fix: %s, want Healthy", vm.Name, s)
		}
	}
	if after.Summary != (assess.Summary{Healthy: 6, NotApplicable: 2}) {
		t.Errorf("summary after the fix = %+v", after.Summary)
	}
	if s := ok(t, url, "assess", "--status", "healthy", "--views"); !strings.Contains(s, "Configured (4)") || !strings.Contains(s, "WARNING still reachable: 22 via web-01-nsg/AllowSSHFromInternet") {
		t.Errorf("views after the fix:\n%s", s)
	}
	if s := ok(t, url, "assess", "--fix"); !strings.Contains(s, "no unhealthy VM") {
		t.Errorf("second plan should be empty:\n%s", s)
	}
}

func TestAssessBadInput(t *testing.T) {
	srv := startServer(t)
	policiesBefore := ok(t, srv.URL, "policy", "list", "-o", "json")
	for _, args := range [][]string{
		{"assess", "--status", "sick"},
		{"assess", "-o", "xml"},
		{"assess", "--yes"},
		{"assess", "--vm", "web-01"},
		{"assess", "--fix", "--status", "unhealthy"},
		{"assess", "--fix", "--yes", "--vm", "db-01"}, // not unhealthy
		{"assess", "--fix", "--yes", "--vm", "no-such-vm"},
		{"assess", "--scope", "not-an-id"},
		{"assess", "--no-such-flag"},
		{"assess", "extra-arg"},
	} {
		r := cli(t, srv.URL, args...)
		if r.code == 0 || r.stderr == "" || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("drawbridge %s: exit %d, stderr %q; want non-zero and a one-line message", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if after := ok(t, srv.URL, "policy", "list", "-o", "json"); after != policiesBefore {
		t.Errorf("refused commands changed the policies")
	}
}
