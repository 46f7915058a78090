package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/store"
)

// getNSG serves an NSG of the simulated network in Azure's own shape
// (Microsoft.Network/networkSecurityGroups GET), so tools that read Azure
// NSGs can read drawbridge's.
func (s *Server) getNSG(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	id := "/subscriptions/" + r.PathValue("sub") + "/resourceGroups/" + r.PathValue("rg") +
		"/providers/Microsoft.Network/networkSecurityGroups/" + r.PathValue("name")
	if !s.authorize(w, principal, rbac.OpNetworkView, id) {
		return
	}
	if s.cfg.Network == nil {
		writeError(w, http.StatusNotFound, "NotFound", "", "this server has no simulated network")
		return
	}
	nsg, err := s.cfg.Network.NSG(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "ResourceNotFound", "", "network security group "+id+" not found")
		return
	} else if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, azureNSG(nsg))
}

// describeSecurityGroups serves the security groups on an AWS VM's ENIs in
// EC2's DescribeSecurityGroups shape.
func (s *Server) describeSecurityGroups(w http.ResponseWriter, r *http.Request) {
	principal, _, ok := s.caller(w, r)
	if !ok {
		return
	}
	vmID := r.URL.Query().Get("vm")
	if vmID == "" {
		writeError(w, http.StatusBadRequest, "BadRequest", "vm", "query parameter vm (an instance's resource ID) is required")
		return
	}
	if !s.authorize(w, principal, rbac.OpNetworkView, vmID) {
		return
	}
	if s.cfg.Network == nil {
		writeError(w, http.StatusNotFound, "NotFound", "", "this server has no simulated network")
		return
	}
	view, err := s.cfg.Network.View(r.Context(), vmID)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "NotFound", "vm", "virtual machine "+vmID+" not found")
		return
	} else if err != nil {
		s.writeServiceError(w, r, err)
		return
	}
	out := struct {
		SecurityGroups []netrule.SecurityGroup `json:"SecurityGroups"`
	}{SecurityGroups: []netrule.SecurityGroup{}}
	seen := map[string]bool{}
	for _, eni := range view.NetworkInterfaces {
		for _, g := range eni.Groups {
			if !seen[strings.ToLower(g.GroupID)] {
				seen[strings.ToLower(g.GroupID)] = true
				out.SecurityGroups = append(out.SecurityGroups, g)
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// azureNSGResource is Azure's networkSecurityGroups resource body.
type azureNSGResource struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Location   string `json:"location,omitempty"`
	Properties struct {
		ProvisioningState    string              `json:"provisioningState"`
		SecurityRules        []azureRuleResource `json:"securityRules"`
		DefaultSecurityRules []azureRuleResource `json:"defaultSecurityRules"`
	} `json:"properties"`
}

type azureRuleResource struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Properties map[string]any `json:"properties"`
}

func azureNSG(n netrule.NSG) azureNSGResource {
	var out azureNSGResource
	out.ID, out.Name, out.Location = n.ID, n.Name, n.Location
	out.Type = "Microsoft.Network/networkSecurityGroups"
	out.Properties.ProvisioningState = "Succeeded"
	out.Properties.SecurityRules = []azureRuleResource{}
	for _, r := range n.SecurityRules {
		out.Properties.SecurityRules = append(out.Properties.SecurityRules, azureRule(n.ID+"/securityRules/", "Microsoft.Network/networkSecurityGroups/securityRules", r))
	}
	for _, r := range netrule.DefaultRules() {
		out.Properties.DefaultSecurityRules = append(out.Properties.DefaultSecurityRules, azureRule(n.ID+"/defaultSecurityRules/", "Microsoft.Network/networkSecurityGroups/defaultSecurityRules", r))
	}
	return out
}

// azureRule moves a flattened rule's fields under "properties", as Azure nests them.
func azureRule(prefix, typ string, r netrule.SecurityRule) azureRuleResource {
	b, _ := json.Marshal(r)
	props := map[string]any{}
	_ = json.Unmarshal(b, &props)
	delete(props, "name")
	props["provisioningState"] = "Succeeded"
	return azureRuleResource{ID: prefix + r.Name, Name: r.Name, Type: typ, Properties: props}
}
