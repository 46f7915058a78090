package jit

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// Bounds Azure puts on maxRequestAccessDuration.
const (
	MinMaxDuration = 5 * time.Minute
	MaxMaxDuration = 24 * time.Hour
)

// Provisioning states reported on a policy.
const (
	ProvisioningSucceeded = "Succeeded"
	ProvisioningFailed    = "Failed"
	ProvisioningUpdating  = "Updating"
)

// Policy is a jitNetworkAccessPolicies resource: for each VM, the ports JIT
// guards. A VM belongs to at most one policy.
type Policy struct {
	ID                string      `json:"id"` // .../locations/{loc}/jitNetworkAccessPolicies/{name}
	Name              string      `json:"name"`
	Location          string      `json:"location"`
	Kind              string      `json:"kind,omitempty"`
	VirtualMachines   []VMPolicy  `json:"virtualMachines"`
	ProvisioningState string      `json:"provisioningState"`
	CreatedAt         time.Time   `json:"createdAt"`
	UpdatedAt         time.Time   `json:"updatedAt"`
	ProvisioningError string      `json:"provisioningError,omitempty"`
	Extra             PolicyExtra `json:"extra,omitzero"`
}

// PolicyExtra holds fields beyond Azure's that later features add.
type PolicyExtra struct{}

// VMPolicy is the part of a policy for one VM.
type VMPolicy struct {
	ID    string       `json:"id"`
	Ports []PortPolicy `json:"ports"`
	// PublicIPAddress is accepted and echoed as Azure does; enforcement
	// uses the inventory's addresses.
	PublicIPAddress string `json:"publicIpAddress,omitempty"`
}

// PortPolicy is one guarded port. Exactly one of AllowedSourceAddressPrefix
// and AllowedSourceAddressPrefixes is set, as in Azure.
type PortPolicy struct {
	Number                       int              `json:"number"`
	Protocol                     netrule.Protocol `json:"protocol"`
	AllowedSourceAddressPrefix   string           `json:"allowedSourceAddressPrefix,omitempty"`
	AllowedSourceAddressPrefixes []string         `json:"allowedSourceAddressPrefixes,omitempty"`
	MaxRequestAccessDuration     string           `json:"maxRequestAccessDuration"`
	// RequireApproval (a drawbridge extension) makes requests for this
	// port wait as Pending until enough members of a group approve.
	RequireApproval *ApprovalRule `json:"requireApproval,omitempty"`
	// ConcurrentSources (a drawbridge extension) lets grants from different
	// sources on this port run side by side; a newer request then ends only
	// an older grant from the same source. Off (Azure's behaviour): any
	// newer request for the port ends the older grant.
	ConcurrentSources bool `json:"concurrentSources,omitempty"`
}

// DistinctVMs returns p's VMs in order, without later entries for a VM
// already listed (IDs compare case-insensitively, as inventory keys do):
// the VMs a store indexes the policy under.
func (p Policy) DistinctVMs() []VMPolicy {
	out := make([]VMPolicy, 0, len(p.VirtualMachines))
	seen := map[string]bool{}
	for _, v := range p.VirtualMachines {
		if k := inventory.Key(v.ID); !seen[k] {
			seen[k] = true
			out = append(out, v)
		}
	}
	return out
}

// AllowedSources parses the allowed prefixes (validated policies only).
func (p PortPolicy) AllowedSources() []Source {
	var out []Source
	for _, s := range joinOne(p.AllowedSourceAddressPrefix, p.AllowedSourceAddressPrefixes) {
		if src, err := ParseSource(s); err == nil {
			out = append(out, src)
		}
	}
	return out
}

// MaxDuration parses MaxRequestAccessDuration (validated policies only).
func (p PortPolicy) MaxDuration() time.Duration {
	d, _ := ParseISODuration(p.MaxRequestAccessDuration)
	return d
}

func joinOne(one string, many []string) []string {
	out := make([]string, 0, len(many)+1)
	if one != "" {
		out = append(out, one)
	}
	return append(out, many...)
}

// VM returns the policy's entry for vmID.
func (p Policy) VM(vmID string) (VMPolicy, bool) {
	if i := slices.IndexFunc(p.VirtualMachines, func(v VMPolicy) bool { return strings.EqualFold(v.ID, vmID) }); i >= 0 {
		return p.VirtualMachines[i], true
	}
	return VMPolicy{}, false
}

// Port returns the VM policy's entry for a port number.
func (v VMPolicy) Port(number int) (PortPolicy, bool) {
	if i := slices.IndexFunc(v.Ports, func(p PortPolicy) bool { return p.Number == number }); i >= 0 {
		return v.Ports[i], true
	}
	return PortPolicy{}, false
}

// PolicyID builds the resource ID of a policy.
func PolicyID(subscription, resourceGroup, location, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Security/locations/%s/jitNetworkAccessPolicies/%s",
		subscription, resourceGroup, location, name)
}

// NormalizePolicy validates p and returns it with protocols in canonical
// spelling. Field paths in errors follow Azure's request body.
func NormalizePolicy(p Policy) (Policy, error) {
	if p.Name == "" {
		return p, invalid("name", "policy name is required")
	}
	if strings.ContainsAny(p.Name, "/ ") {
		return p, invalid("name", "policy name %q must not contain '/' or spaces", p.Name)
	}
	if p.Kind != "" && !strings.EqualFold(p.Kind, "Basic") {
		return p, invalid("kind", "kind %q is not supported; use \"Basic\"", p.Kind)
	}
	if len(p.VirtualMachines) == 0 {
		return p, invalid("properties.virtualMachines", "at least one virtual machine is required")
	}
	out := p
	out.VirtualMachines = make([]VMPolicy, len(p.VirtualMachines))
	seenVM := map[string]bool{}
	for i, vm := range p.VirtualMachines {
		field := fmt.Sprintf("properties.virtualMachines[%d]", i)
		id, err := resource.Parse(vm.ID)
		if err != nil {
			return p, invalid(field+".id", "%v", err)
		}
		if seenVM[id.Key()] {
			return p, invalid(field+".id", "virtual machine %s is listed twice", vm.ID)
		}
		seenVM[id.Key()] = true
		if len(vm.Ports) == 0 {
			return p, invalid(field+".ports", "at least one port is required")
		}
		nv := VMPolicy{ID: vm.ID, Ports: make([]PortPolicy, len(vm.Ports)), PublicIPAddress: vm.PublicIPAddress}
		seenPort := map[int]bool{}
		for j, port := range vm.Ports {
			pf := fmt.Sprintf("%s.ports[%d]", field, j)
			np, err := normalizePort(pf, port)
			if err != nil {
				return p, err
			}
			if seenPort[np.Number] {
				return p, invalid(pf+".number", "port %d is listed twice for this virtual machine", np.Number)
			}
			seenPort[np.Number] = true
			nv.Ports[j] = np
		}
		out.VirtualMachines[i] = nv
	}
	return out, nil
}

func normalizePort(field string, p PortPolicy) (PortPolicy, error) {
	if p.Number < 1 || p.Number > 65535 {
		return p, invalid(field+".number", "port %d is not between 1 and 65535", p.Number)
	}
	proto, err := ParsePolicyProtocol(string(p.Protocol))
	if err != nil {
		return p, invalid(field+".protocol", "%v", err)
	}
	p.Protocol = proto
	hasOne, hasMany := p.AllowedSourceAddressPrefix != "", len(p.AllowedSourceAddressPrefixes) > 0
	switch {
	case hasOne && hasMany:
		return p, invalid(field+".allowedSourceAddressPrefixes", "allowedSourceAddressPrefix and allowedSourceAddressPrefixes are mutually exclusive")
	case !hasOne && !hasMany:
		return p, invalid(field+".allowedSourceAddressPrefix", "one of allowedSourceAddressPrefix or allowedSourceAddressPrefixes is required")
	case hasOne:
		if _, err := ParseSource(p.AllowedSourceAddressPrefix); err != nil {
			return p, invalid(field+".allowedSourceAddressPrefix", "%v", err)
		}
	default:
		for k, s := range p.AllowedSourceAddressPrefixes {
			if _, err := ParseSource(s); err != nil {
				return p, invalid(fmt.Sprintf("%s.allowedSourceAddressPrefixes[%d]", field, k), "%v", err)
			}
		}
	}
	if p.MaxRequestAccessDuration == "" {
		return p, invalid(field+".maxRequestAccessDuration", "maxRequestAccessDuration is required (ISO 8601, e.g. PT3H)")
	}
	d, err := ParseDuration(p.MaxRequestAccessDuration)
	if err != nil {
		return p, invalid(field+".maxRequestAccessDuration", "%v", err)
	}
	if !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(p.MaxRequestAccessDuration)), "P") {
		p.MaxRequestAccessDuration = FormatISODuration(d) // "3h" is stored as Azure writes it, PT3H
	}
	if d < MinMaxDuration || d > MaxMaxDuration {
		return p, invalid(field+".maxRequestAccessDuration", "%s is outside the allowed range PT5M to PT24H", p.MaxRequestAccessDuration)
	}
	if err := p.RequireApproval.validate(field + ".requireApproval"); err != nil {
		return p, err
	}
	return p, nil
}

// ParsePolicyProtocol accepts Azure's JIT protocol values TCP, UDP and *
// (any case; "Tcp" and "Any" too). An empty protocol means "*", as in Azure.
func ParsePolicyProtocol(s string) (netrule.Protocol, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return netrule.Tcp, nil
	case "udp":
		return netrule.Udp, nil
	case "*", "any", "":
		return netrule.Any, nil
	}
	return "", fmt.Errorf("protocol %q is not one of TCP, UDP, *", s)
}
