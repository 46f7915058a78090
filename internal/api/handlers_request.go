package api

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

// initiate is Azure's POST …/jitNetworkAccessPolicies/{name}/initiate.
func (s *Server) initiate(w http.ResponseWriter, r *http.Request) {
	if !checkAPIVersion(w, r) {
		return
	}
	principal, actor, ok := s.caller(w, r)
	if !ok {
		return
	}
	var in jit.InitiateInput
	if !decode(w, r, &in) {
		return
	}
	for i, vm := range in.VirtualMachines {
		if vm.ID == "" {
			writeError(w, http.StatusBadRequest, "BadRequest", "virtualMachines["+strconv.Itoa(i)+"].id", "virtual machine id is required")
			return
		}
		if !s.authorize(w, principal, rbac.OpInitiate, vm.ID) {
			return
		}
	}
	req, err := s.cfg.Service.Initiate(r.Context(), actor, policyIDFrom(r), in)
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, specRequest(requestResource(req)))
}

// simpleRequest is drawbridge's short form: a VM and ports; the policy is
// the one that guards the VM.
func (s *Server) simpleRequest(w http.ResponseWriter, r *http.Request) {
	principal, actor, ok := s.caller(w, r)
	if !ok {
		return
	}
	var in SimpleRequest
	if !decode(w, r, &in) {
		return
	}
	if in.VM == "" {
		writeError(w, http.StatusBadRequest, "BadRequest", "vm", "vm is required")
		return
	}
	if len(in.Ports) == 0 {
		writeError(w, http.StatusBadRequest, "BadRequest", "ports", "at least one port is required")
		return
	}
	if !strings.HasPrefix(in.VM, "/") { // a name, as vm list shows it
		if in.VM, ok = s.resolveVMName(w, r, principal, in.VM); !ok {
			return
		}
	}
	if !s.authorize(w, principal, rbac.OpInitiate, in.VM) {
		return
	}
	var end time.Time
	if in.EndTimeUtc != "" {
		t, err := time.Parse(time.RFC3339, in.EndTimeUtc)
		if err != nil {
			writeError(w, http.StatusBadRequest, "BadRequest", "endTimeUtc", "endTimeUtc "+strconv.Quote(in.EndTimeUtc)+" is not an RFC 3339 time")
			return
		}
		end = t
	}
	vmIn := jit.InitiateVM{ID: in.VM}
	for _, p := range in.Ports {
		vmIn.Ports = append(vmIn.Ports, jit.InitiatePort{Number: p, EndTimeUtc: end, Duration: in.Duration, AllowedSourceAddressPrefix: in.Source})
	}
	req, err := s.cfg.Service.InitiateForVM(r.Context(), actor, jit.InitiateInput{VirtualMachines: []jit.InitiateVM{vmIn}, Justification: in.Justification})
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, requestResource(req))
}

// queryLimit reads the optional ?limit= of a listing (0 when absent); on a
// bad value it answers 400 naming the field and reports false.
func queryLimit(w http.ResponseWriter, q url.Values) (int, bool) {
	v := q.Get("limit")
	if v == "" {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		writeError(w, http.StatusBadRequest, "BadRequest", "limit", "limit must be a non-negative integer")
		return 0, false
	}
	return n, true
}

func (s *Server) listGrants(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := jit.GrantFilter{VMID: q.Get("vm"), ActiveOnly: q.Get("active") == "true"}
	if f.Limit, ok = queryLimit(w, q); !ok {
		return
	}
	var v visibleFunc
	if f.VMID != "" {
		if !s.authorize(w, principal, rbac.OpGrantsList, f.VMID) {
			return
		}
	} else if v, ok = s.visible(w, principal, rbac.OpGrantsList, "/"); !ok {
		return
	}
	limit := f.Limit
	if v != nil {
		f.Limit = 0 // the limit counts what the caller may see
	}
	gs, err := s.cfg.Service.ListGrants(r.Context(), f)
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	if v != nil {
		gs = filterGrants(gs, v, limit)
	}
	views, err := s.grantViews(r, gs)
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	if page, ok := pageOf(s, w, r, views); ok {
		writeJSON(w, http.StatusOK, page)
	}
}

func (s *Server) revokeGrant(w http.ResponseWriter, r *http.Request) {
	principal, actor, ok := s.caller(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	g, err := s.cfg.Service.GetGrant(r.Context(), id)
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	if !s.ownGrant(w, r, principal, g) && !s.authorize(w, principal, rbac.OpRevoke, g.VMID) {
		return
	}
	g, err = s.cfg.Service.Revoke(r.Context(), actor, id)
	if err != nil && g.ID == "" {
		s.writeServiceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

func (s *Server) listVMs(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	v, ok := s.visible(w, principal, rbac.OpVMList, "/")
	if !ok {
		return
	}
	vms, err := s.cfg.Service.ListVMs(r.Context())
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	policies, err := s.cfg.Service.ListPolicies(r.Context(), "/", "")
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	active, err := s.cfg.Service.ListGrants(r.Context(), jit.GrantFilter{ActiveOnly: true})
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	counts := map[string]int{}
	for _, g := range active {
		counts[inventory.Key(g.VMID)]++
	}
	out := ListResponse[VMSummary]{Value: []VMSummary{}}
	for _, vm := range vms {
		if !v.shows(vm.ID) {
			continue
		}
		row := VMSummary{ID: vm.ID, Name: vm.Name, Cloud: string(vm.Cloud), Provider: vm.Provider, Location: vm.Location, Active: counts[inventory.Key(vm.ID)]}
		for _, p := range policies {
			if vp, ok := p.VM(vm.ID); ok {
				row.Policy = p.ID
				for _, port := range vp.Ports {
					row.Guarded = append(row.Guarded, port.Number)
				}
			}
		}
		out.Value = append(out.Value, row)
	}
	if page, ok := pageOf(s, w, r, out.Value); ok {
		writeJSON(w, http.StatusOK, page)
	}
}

func (s *Server) networkView(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	vmID := r.URL.Query().Get("vm")
	if vmID == "" {
		writeError(w, http.StatusBadRequest, "BadRequest", "vm", "query parameter vm (a VM resource ID) is required")
		return
	}
	if !s.authorize(w, principal, rbac.OpNetworkView, vmID) {
		return
	}
	vm, err := s.cfg.Service.GetVM(r.Context(), vmID)
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	if s.cfg.Network == nil || vm.Provider != inventory.ProviderSim {
		writeError(w, http.StatusConflict, "Conflict", "vm", "virtual machine "+vmID+" uses provider "+vm.Provider+", which has no network view")
		return
	}
	view, err := s.cfg.Network.View(r.Context(), vm.ID)
	if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, view)
}

// applyInventory loads an inventory document (JSON or YAML).
func (s *Server) applyInventory(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	if !s.authorize(w, principal, rbac.OpInventory, "/") {
		return
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequestContent", "", "request body: "+describeJSONError(err))
		return
	}
	inv, err := inventory.Parse(data)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidInventory", "", strings.TrimSpace(err.Error()))
		return
	}
	counts := map[string]int{"vms": len(inv.VMs), "networkSecurityGroups": len(inv.NSGs), "securityGroups": len(inv.SecurityGroups)}
	if prov := r.URL.Query().Get("prune"); prov != "" {
		// A discovery: VMs of this provider under scope that the document
		// lacks were deleted in the cloud and leave the inventory.
		removed, err := s.cfg.Service.SyncInventory(r.Context(), inv, jit.SyncScope{Provider: prov, Prefix: r.URL.Query().Get("scope")})
		if err != nil {
			s.writeServiceError(w, r, err)
			return
		}
		counts["removed"] = len(removed)
		writeJSON(w, http.StatusOK, counts)
		return
	}
	if err := s.cfg.Service.ApplyInventory(r.Context(), inv); err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, counts)
}
