//go:build !drawbridge_client

package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/assess"
)

// The demo's assessment step: what the JIT recommendation says about the
// scenario's VM before and after JIT is enabled on it.

// demoAssessment prints the recommendation's result for one VM and checks
// its status.
func (d *demo) demoAssessment(title string, vm api.VMSummary, want assess.Status) error {
	as, err := d.c.Assessment(d.ctx, vm.ID)
	if err != nil {
		return fmt.Errorf("assessment: %w", err)
	}
	d.sub(title + " (GET /drawbridge/v1/assessment?scope=<vm>)")
	if len(as.Results) != 1 {
		return fmt.Errorf("check failed: the assessment of %s has %d results, want 1", vm.Name, len(as.Results))
	}
	r := as.Results[0]
	if !d.shownRec { // the recommendation's title, once
		writeWrapped(d.w, "", "", fmt.Sprintf("Recommendation: %s (severity %s)", as.Recommendation.Title, as.Recommendation.Severity))
		d.shownRec = true
	}
	fmt.Fprintf(d.w, "%s: %s\n", vm.Name, r.Status)
	for _, e := range r.Exposures {
		writeWrapped(d.w, "  ", "    ", fmt.Sprintf("port %d/%s reachable from the internet, exposed by %s", e.Port, e.Protocol, ruleText(e.Rule)))
	}
	if r.HasPolicy() {
		fmt.Fprintf(d.w, "  JIT guards %s\n", policyPorts(r.JITPorts))
	}
	for _, e := range r.StillReachable {
		writeWrapped(d.w, "  ", "    ", fmt.Sprintf("warning: port %d is still reachable through %s, which keeps priority over JIT's deny rule", e.Port, ruleText(e.Rule)))
	}
	if len(as.Fix.VirtualMachines) > 0 {
		var ports []string
		for _, p := range as.Fix.VirtualMachines[0].Ports {
			ports = append(ports, strconv.Itoa(p.Number))
		}
		writeWrapped(d.w, "  ", "    ", fmt.Sprintf("fix: enable JIT on port(s) %s (drawbridge assess --fix --yes)", strings.Join(ports, ",")))
	}
	if r.Status != want {
		return fmt.Errorf("check failed: the assessment reports %s as %s, want %s", vm.Name, r.Status, want)
	}
	return nil
}
