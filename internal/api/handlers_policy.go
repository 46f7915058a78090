package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

const policyType = "Microsoft.Security/locations/jitNetworkAccessPolicies"

// requestsShown bounds the requests embedded in a policy response (newest first).
const requestsShown = 50

func policyIDFrom(r *http.Request) string {
	return jit.PolicyID(r.PathValue("sub"), r.PathValue("rg"), r.PathValue("loc"), r.PathValue("name"))
}

func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request) {
	if !checkAPIVersion(w, r) {
		return
	}
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	var body PolicyResource
	if !decode(w, r, &body) {
		return
	}
	if body.Location != "" && !strings.EqualFold(body.Location, r.PathValue("loc")) {
		writeError(w, http.StatusBadRequest, "BadRequest", "location", "location "+body.Location+" does not match the location in the path ("+r.PathValue("loc")+")")
		return
	}
	id := policyIDFrom(r)
	// Authorize against each VM named (the seed's rule: write on the VM's
	// subscription or resource group), and the policy itself.
	if !s.authorize(w, principal, rbac.OpPolicyPut, id) {
		return
	}
	for i, vm := range body.Properties.VirtualMachines {
		if vm.ID == "" {
			writeError(w, http.StatusBadRequest, "BadRequest", "properties.virtualMachines["+strconv.Itoa(i)+"].id", "virtual machine id is required")
			return
		}
		if !s.authorize(w, principal, rbac.OpPolicyPut, vm.ID) {
			return
		}
	}
	p := jit.Policy{
		ID:              id,
		Name:            r.PathValue("name"),
		Location:        r.PathValue("loc"),
		Kind:            body.Kind,
		VirtualMachines: body.Properties.VirtualMachines,
	}
	saved, err := s.cfg.Service.PutPolicy(r.Context(), p)
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	s.writePolicy(w, r, http.StatusOK, saved)
}

func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request) {
	if !checkAPIVersion(w, r) {
		return
	}
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	id := policyIDFrom(r)
	if !s.authorize(w, principal, rbac.OpPolicyGet, id) {
		return
	}
	p, err := s.cfg.Service.GetPolicy(r.Context(), id)
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	s.writePolicy(w, r, http.StatusOK, p)
}

func (s *Server) deletePolicy(w http.ResponseWriter, r *http.Request) {
	if !checkAPIVersion(w, r) {
		return
	}
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	id := policyIDFrom(r)
	if !s.authorize(w, principal, rbac.OpPolicyDelete, id) {
		return
	}
	err := s.cfg.Service.DeletePolicy(r.Context(), id)
	switch {
	case errors.Is(err, jit.ErrNotFound):
		// The specification's answer for a policy that does not exist.
		w.WriteHeader(http.StatusNoContent)
	case err != nil:
		s.writeServiceError(w, r, err)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// listAllPolicies lists every policy the server holds (drawbridge's CLI view).
func (s *Server) listAllPolicies(w http.ResponseWriter, r *http.Request) {
	s.writePolicyList(w, r, "/", "")
}

// writePolicyList answers a listing of the policies inside scope (and in
// location, if set) for a caller allowed to list there.
func (s *Server) writePolicyList(w http.ResponseWriter, r *http.Request, scope, location string) {
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	v, ok := s.visible(w, principal, rbac.OpPolicyList, scope)
	if !ok {
		return
	}
	ps, err := s.cfg.Service.ListPolicies(r.Context(), scope, location)
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	ps = filterPolicies(ps, v)
	out := ListResponse[PolicyResource]{Value: []PolicyResource{}}
	for _, p := range ps {
		res, err := s.policyResource(r, p)
		if err != nil {
			s.writeServiceError(w, r, err)
			return
		}
		out.Value = append(out.Value, res)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) writePolicy(w http.ResponseWriter, r *http.Request, status int, p jit.Policy) {
	res, err := s.policyResource(r, p)
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	writeJSON(w, status, res)
}

func (s *Server) policyResource(r *http.Request, p jit.Policy) (PolicyResource, error) {
	reqs, err := s.cfg.Service.ListRequests(r.Context(), p.ID, requestsShown)
	if err != nil {
		return PolicyResource{}, err
	}
	res := PolicyResource{
		ID:       p.ID,
		Name:     p.Name,
		Type:     policyType,
		Kind:     p.Kind,
		Location: p.Location,
		Properties: PolicyProperties{
			VirtualMachines:   specVMs(p.VirtualMachines),
			ProvisioningState: p.ProvisioningState,
			ProvisioningError: p.ProvisioningError,
			Requests:          []RequestResource{},
		},
	}
	for _, rq := range reqs {
		res.Properties.Requests = append(res.Properties.Requests, specRequest(requestResource(rq)))
	}
	return res, nil
}

// requestResource renders a request in Azure's shape, grouping grants by VM
// in the order they were requested.
func requestResource(rq jit.Request) RequestResource {
	out := RequestResource{ID: rq.ID, StartTimeUtc: rq.StartTime, Requestor: rq.Requestor, Justification: rq.Justification, VirtualMachines: []RequestVM{}}
	index := map[string]int{}
	for _, g := range rq.Grants {
		i, ok := index[strings.ToLower(g.VMID)]
		if !ok {
			i = len(out.VirtualMachines)
			index[strings.ToLower(g.VMID)] = i
			out.VirtualMachines = append(out.VirtualMachines, RequestVM{ID: g.VMID})
		}
		var connect string
		if g.ConnectTo.IsValid() {
			connect = g.ConnectTo.String()
		}
		out.VirtualMachines[i].Ports = append(out.VirtualMachines[i].Ports, RequestPort{
			Number:                     g.Port,
			AllowedSourceAddressPrefix: g.Source.String(),
			EndTimeUtc:                 g.EndTime,
			Status:                     g.Status,
			StatusReason:               g.StatusReason,
			GrantID:                    g.ID,
			Applied:                    g.Applied,
			ProviderError:              g.ProviderError,
			MappedPort:                 int(g.ConnectTo.Port()),
			ConnectTo:                  connect,
		})
	}
	return out
}
