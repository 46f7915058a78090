package api

import (
	"context"
	"net/http"
	"time"

	"github.com/drawbridge/drawbridge/internal/assess"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// AssessmentNote explains how the recommendation classifies guarded ports
// that stay reachable. It is part of every assessment response.
const AssessmentNote = "Healthy follows Defender for Cloud: a VM whose JIT policy guards every management port the internet can reach is Healthy. " +
	"JIT's deny rule stays behind rules that already allowed a port (existing rules keep priority), so such a port can still be reachable: " +
	"it is listed under stillReachable with the rule that allows it; remove or narrow that rule to close the port."

// Assessment is GET /drawbridge/v1/assessment: the recommendation with a
// result per VM, the portal's three views, and the fix plan for the
// unhealthy VMs. It is paged like the lists ($top, $skipToken): Results,
// Views and Fix cover the VMs of one page, Summary counts every VM in
// scope, and NextLink is the next page's URL while VMs remain.
type Assessment struct {
	assess.Report
	AssessedAt time.Time      `json:"assessedAt"`
	Scope      string         `json:"scope"`
	Views      assess.Views   `json:"views"`
	Fix        assess.FixPlan `json:"fix"`
	Notes      []string       `json:"notes"`
	NextLink   string         `json:"nextLink,omitempty"`
}

// AssessmentFixRequest is the body of POST /drawbridge/v1/assessment/fix.
// An empty body (or no VMs) fixes every unhealthy VM.
type AssessmentFixRequest struct {
	// VMs limits the fix to these VMs (resource IDs); each must be unhealthy.
	VMs []string `json:"vms,omitempty"`
	// PolicyName names the policy a VM without one is added to (default "default").
	PolicyName string `json:"policyName,omitempty"`
}

// AssessmentFixResponse says what a fix did.
type AssessmentFixResponse struct {
	Plan     assess.FixPlan  `json:"plan"`
	Policies []FixedPolicy   `json:"policies"`
	Summary  assess.Summary  `json:"summaryAfter"`
	Results  []assess.Result `json:"resultsAfter,omitempty"`
	Notes    []string        `json:"notes,omitempty"`
}

// FixedPolicy is one policy the fix created or extended.
type FixedPolicy struct {
	ID                string   `json:"id"`
	Created           bool     `json:"created"`
	VMs               []string `json:"vms"`
	ProvisioningState string   `json:"provisioningState"`
	ProvisioningError string   `json:"provisioningError,omitempty"`
	// Widened lists ports whose protocol became "*" (jit.PolicyChange).
	Widened []string `json:"widened,omitempty"`
	// Unchanged is true when the policy already guarded the ports: it was
	// only applied again.
	Unchanged bool `json:"unchanged,omitempty"`
}

// assessmentData reads what an assessment looks at from the service: the
// stored inventory (limited to VMs inside scope), the policies as guarded
// ports per VM, the providers this server runs, and the request history.
// Host agents: a host counts as having an agent while one is subscribed to
// it (Config.Agents, when it can tell).
func (s *Server) assessmentData(ctx context.Context, scope resource.ID) (assess.Input, []jit.Policy, []assess.AccessRecord, error) {
	svc := s.cfg.Service
	inv, err := svc.Inventory(ctx)
	if err != nil {
		return assess.Input{}, nil, nil, err
	}
	if scope.String() != "/" {
		vms := inv.VMs[:0:0]
		for _, vm := range inv.VMs {
			if id, err := resource.Parse(vm.ID); err == nil && scope.Contains(id) {
				vms = append(vms, vm)
			}
		}
		inv.VMs = vms
	}
	policies, err := svc.ListPolicies(ctx, "/", "")
	if err != nil {
		return assess.Input{}, nil, nil, err
	}
	in := assess.Input{Inventory: inv, Policies: map[string][]assess.PolicyPort{}, Providers: []string{}}
	var history []assess.AccessRecord
	for _, p := range policies {
		for _, v := range p.VirtualMachines {
			ports := make([]assess.PolicyPort, 0, len(v.Ports))
			for _, port := range v.Ports {
				ports = append(ports, assess.PolicyPort{Number: port.Number, Protocol: port.Protocol})
			}
			in.Policies[inventory.Key(v.ID)] = ports
		}
		reqs, err := svc.ListRequests(ctx, p.ID, 0)
		if err != nil {
			return assess.Input{}, nil, nil, err
		}
		for _, r := range reqs {
			// A stored request was approved (refused ones are not stored):
			// one record per VM it opened ports on.
			seen := map[string]bool{}
			for _, g := range r.Grants {
				if k := inventory.Key(g.VMID); !seen[k] {
					seen[k] = true
					history = append(history, assess.AccessRecord{VMID: g.VMID, User: r.Requestor, Time: r.StartTime, Approved: true})
				}
			}
		}
	}
	// Hosts count as protected only while their agent is connected.
	if c, ok := s.cfg.Agents.(interface{ Connected(vmID string) bool }); ok {
		in.Agents = map[string]bool{}
		for _, vm := range inv.VMs {
			if vm.Cloud == inventory.Host && c.Connected(vm.ID) {
				in.Agents[inventory.Key(vm.ID)] = true
			}
		}
	}
	for _, name := range []string{inventory.ProviderSim, inventory.ProviderNftables, inventory.ProviderAzure, inventory.ProviderAWS} {
		if svc.RunsProvider(name) {
			in.Providers = append(in.Providers, name)
		}
	}
	return in, policies, history, nil
}

func (s *Server) assessScope(w http.ResponseWriter, r *http.Request, p rbac.Principal, op rbac.Operation) (resource.ID, bool) {
	raw := r.URL.Query().Get("scope")
	if raw == "" {
		raw = "/"
	}
	scope, err := resource.Parse(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidResourceId", "scope", err.Error())
		return resource.ID{}, false
	}
	if !s.authorize(w, p, op, raw) {
		return resource.ID{}, false
	}
	return scope, true
}

func (s *Server) getAssessment(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	scope, ok := s.assessScope(w, r, principal, rbac.OpAssessRead)
	if !ok {
		return
	}
	in, _, history, err := s.assessmentData(r.Context(), scope)
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	rep, err := assess.Assess(in)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "", err.Error())
		return
	}
	page, ok := pageOf(s, w, r, rep.Results)
	if !ok {
		return
	}
	rep.Results = page.Value
	now := s.cfg.Service.Clock().Now().UTC()
	writeJSON(w, http.StatusOK, Assessment{
		Report: rep, AssessedAt: now, Scope: scope.String(),
		Views: assess.BuildViews(rep, history, now),
		Fix:   assess.Fix(rep),
		Notes: []string{AssessmentNote}, NextLink: page.NextLink,
	})
}
