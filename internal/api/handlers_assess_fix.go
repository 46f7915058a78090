package api

import (
	"context"
	"net/http"
	"strings"

	"github.com/drawbridge/drawbridge/internal/assess"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// fixAssessment applies the fix plan: every unhealthy VM (or those named)
// gets its exposed management ports guarded by a JIT policy with the
// default settings (TCP, source *, at most PT3H), in the policy it already
// has or in the policy named PolicyName of its resource group and location.
//
// The helpers below write the error response themselves and return false
// when the request ends there.
func (s *Server) fixAssessment(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	body, ok := decodeFixRequest(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	in, policies, rep, ok := s.assessAll(ctx, w, r)
	if !ok {
		return
	}
	plan := assess.Fix(rep)
	if plan.VirtualMachines, ok = onlyNamedVMs(w, plan.VirtualMachines, body.VMs); !ok {
		return
	}
	for _, vm := range plan.VirtualMachines {
		if !s.authorize(w, principal, rbac.OpAssessFix, vm.ID) {
			return
		}
	}
	changes, err := jit.MergePorts(policies, fixPorts(in, plan), body.PolicyName)
	if err != nil {
		writeError(w, http.StatusConflict, "Conflict", "", err.Error())
		return
	}
	out := AssessmentFixResponse{Plan: plan, Policies: []FixedPolicy{}, Notes: []string{AssessmentNote}}
	if out.Policies, ok = s.putFixedPolicies(ctx, w, r, changes); !ok {
		return
	}
	// Assess again so the caller sees the outcome for the fixed VMs.
	_, _, after, ok := s.assessAll(ctx, w, r)
	if !ok {
		return
	}
	out.Summary = after.Summary
	out.Results = resultsOf(after.Results, plan.VirtualMachines)
	writeJSON(w, http.StatusOK, out)
}

// decodeFixRequest reads the optional body and defaults its PolicyName.
func decodeFixRequest(w http.ResponseWriter, r *http.Request) (AssessmentFixRequest, bool) {
	var body AssessmentFixRequest
	if r.ContentLength != 0 && !decode(w, r, &body) {
		return body, false
	}
	if body.PolicyName == "" {
		body.PolicyName = "default"
	}
	if strings.ContainsAny(body.PolicyName, "/ ") {
		writeError(w, http.StatusBadRequest, "BadRequest", "policyName", "policy name "+body.PolicyName+" must not contain '/' or spaces")
		return body, false
	}
	return body, true
}

// assessAll assesses every VM, returning the input, the policies and the
// report.
func (s *Server) assessAll(ctx context.Context, w http.ResponseWriter, r *http.Request) (assess.Input, []jit.Policy, assess.Report, bool) {
	in, policies, _, err := s.assessmentData(ctx, resource.MustParse("/"))
	if err != nil {
		s.writeServiceError(w, r, err)
		return in, nil, assess.Report{}, false
	}
	rep, err := assess.Assess(in)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "", err.Error())
		return in, nil, assess.Report{}, false
	}
	return in, policies, rep, true
}

// onlyNamedVMs keeps the plan's VMs that names lists (all of them when it
// is empty); a named VM the plan lacks is a 409.
func onlyNamedVMs(w http.ResponseWriter, vms []assess.FixVM, names []string) ([]assess.FixVM, bool) {
	if len(names) == 0 {
		return vms, true
	}
	want := map[string]int{}
	for i, id := range names {
		want[inventory.Key(id)] = i
	}
	kept := vms[:0:0]
	for _, vm := range vms {
		if _, ok := want[inventory.Key(vm.ID)]; ok {
			kept = append(kept, vm)
			delete(want, inventory.Key(vm.ID))
		}
	}
	for _, i := range want {
		writeError(w, http.StatusConflict, "Conflict", "vms", "virtual machine "+names[i]+" is not unhealthy in the assessment: there is nothing to fix")
		return nil, false
	}
	return kept, true
}

// fixPorts turns the plan into the ports to merge into each VM's policy.
func fixPorts(in assess.Input, plan assess.FixPlan) []jit.VMPorts {
	vms := map[string]inventory.VM{}
	for _, vm := range in.Inventory.VMs {
		vms[inventory.Key(vm.ID)] = vm
	}
	adds := make([]jit.VMPorts, 0, len(plan.VirtualMachines))
	for _, fv := range plan.VirtualMachines {
		add := jit.VMPorts{VM: vms[inventory.Key(fv.ID)]}
		for _, p := range fv.Ports {
			add.Ports = append(add.Ports, jit.PortPolicy{Number: p.Number, Protocol: netrule.Protocol(p.Protocol),
				AllowedSourceAddressPrefix: p.AllowedSourceAddressPrefix, MaxRequestAccessDuration: p.MaxRequestAccessDuration})
		}
		adds = append(adds, add)
	}
	return adds
}

// putFixedPolicies writes each changed policy. Policies already written
// stay when a later one fails: each PUT is whole on its own.
func (s *Server) putFixedPolicies(ctx context.Context, w http.ResponseWriter, r *http.Request, changes []jit.PolicyChange) ([]FixedPolicy, bool) {
	fixed := []FixedPolicy{}
	for _, c := range changes {
		saved, err := s.cfg.Service.PutPolicy(ctx, c.Policy)
		if err != nil {
			s.writeServiceError(w, r, err)
			return nil, false
		}
		fixed = append(fixed, FixedPolicy{ID: saved.ID, Created: c.Created, VMs: c.VMs,
			ProvisioningState: saved.ProvisioningState, ProvisioningError: saved.ProvisioningError,
			Widened: c.Widened, Unchanged: c.Unchanged})
	}
	return fixed, true
}

// resultsOf returns the results of the fixed VMs.
func resultsOf(results []assess.Result, fixedVMs []assess.FixVM) []assess.Result {
	fixed := map[string]bool{}
	for _, vm := range fixedVMs {
		fixed[inventory.Key(vm.ID)] = true
	}
	var out []assess.Result
	for _, res := range results {
		if fixed[inventory.Key(res.ID)] {
			out = append(out, res)
		}
	}
	return out
}
