// Package assess owns the JIT recommendation: which VMs of an inventory
// should have just-in-time access, following Defender for Cloud's logic.
// Every VM is Healthy (no management port reachable from the internet, or
// JIT guards each one that is), Unhealthy (a management port is reachable
// from the internet and JIT does not guard it: each such port is listed
// with the rule that exposes it) or Not applicable (JIT cannot protect it,
// with the reason). It also builds the portal's three views (Configured,
// Not configured, Unsupported) and the one-step fix: the default policy
// for each unhealthy VM.
//
// It is pure: the inventory, the JIT policies, the request history and
// "now" are inputs; nothing is read from a store or a clock.
package assess

import (
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// The recommendation as Defender for Cloud names it.
const (
	Title    = "Management ports of virtual machines should be protected with just-in-time network access control"
	Severity = "High"
)

// ManagementPorts returns the ports every assessment checks: SSH, RDP and
// WinRM over HTTP and HTTPS.
func ManagementPorts() []int { return []int{22, 3389, 5985, 5986} }

// Status of a VM in the recommendation.
type Status string

const (
	Healthy       Status = "Healthy"
	Unhealthy     Status = "Unhealthy"
	NotApplicable Status = "NotApplicable"
)

// Reason a VM is not applicable.
type Reason string

const (
	// ReasonNoNetworkSecurity: no NSG on any NIC or subnet (Azure), no
	// security group on any ENI (AWS): JIT has nothing to put its rules in.
	ReasonNoNetworkSecurity Reason = "NoNetworkSecurityGroup"
	// ReasonClassic: a classic (ASM) deployment, which JIT does not support.
	ReasonClassic Reason = "ClassicDeployment"
	// ReasonFirewallManager: behind an Azure Firewall controlled by Azure
	// Firewall Manager policies, which JIT cannot change.
	ReasonFirewallManager Reason = "FirewallManagerPolicy"
	// ReasonJITDisabled: a setting switches JIT off for the VM's
	// subscription or resource group.
	ReasonJITDisabled Reason = "JITDisabledBySetting"
	// ReasonProviderCannotEnforce: the VM's provider does not run here or
	// cannot enforce on this kind of machine.
	ReasonProviderCannotEnforce Reason = "ProviderCannotEnforce"
	// ReasonNoAgent: a Linux host with no drawbridge agent connected.
	ReasonNoAgent Reason = "NoAgent"
	// ReasonInventoryError: the VM's network objects are missing or invalid.
	ReasonInventoryError Reason = "InventoryError"
)

// PolicyPort is one port a VM's JIT policy guards. Protocol "*" guards TCP
// and UDP.
type PolicyPort struct {
	Number   int              `json:"number"`
	Protocol netrule.Protocol `json:"protocol"`
}

// Input is everything one assessment looks at.
type Input struct {
	Inventory inventory.Inventory `json:"inventory"`
	// Policies holds the guarded ports of every VM that has a JIT policy,
	// keyed by inventory.Key(vmID).
	Policies map[string][]PolicyPort `json:"policies,omitempty"`
	// ExtraPorts are checked as management ports besides ManagementPorts.
	ExtraPorts []int `json:"extraPorts,omitempty"`
	// Providers are the providers this server runs. Nil means sim and
	// nftables (the ones built in).
	Providers []string `json:"providers,omitempty"`
	// Agents marks the host VMs (by inventory.Key) whose agent is connected.
	Agents map[string]bool `json:"agents,omitempty"`
	// Workers is how many goroutines classify VMs; 0 means GOMAXPROCS.
	// Small inventories (under 1000 VMs per worker) use fewer.
	Workers int `json:"-"`
}

// Recommendation is the header of a report.
type Recommendation struct {
	Title       string `json:"title"`
	Severity    string `json:"severity"`
	Description string `json:"description"`
}

// Summary counts the VMs per status.
type Summary struct {
	Healthy       int `json:"healthy"`
	Unhealthy     int `json:"unhealthy"`
	NotApplicable int `json:"notApplicable"`
}

// Report is the result of an assessment: one Result per VM, in inventory order.
type Report struct {
	Recommendation  Recommendation `json:"recommendation"`
	ManagementPorts []int          `json:"managementPorts"`
	Summary         Summary        `json:"summary"`
	Results         []Result       `json:"results"`
}

// Result is the assessment of one VM.
type Result struct {
	ID       string          `json:"id"`
	Name     string          `json:"name,omitempty"`
	Cloud    inventory.Cloud `json:"cloud"`
	Provider string          `json:"provider"`
	Location string          `json:"location,omitempty"`
	Status   Status          `json:"status"`
	// Reason and Detail say why a VM is not applicable.
	Reason Reason `json:"reason,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Exposures are the management ports reachable from the internet that
	// JIT does not guard: the reason a VM is unhealthy.
	Exposures []Exposure `json:"exposures,omitempty"`
	// JITPorts are the ports the VM's JIT policy guards (nil: no policy).
	JITPorts []PolicyPort `json:"jitPorts,omitempty"`
	// StillReachable are ports JIT guards that the internet can reach all
	// the same, because a rule ahead of JIT's deny rule allows them (the
	// seed: existing rules keep priority) or an access grant is open.
	StillReachable []Exposure `json:"stillReachable,omitempty"`
}

// HasPolicy reports whether the VM has a JIT policy.
func (r Result) HasPolicy() bool { return r.JITPorts != nil }

// Exposure is one management port reachable from the internet.
type Exposure struct {
	Port     int              `json:"port"`
	Protocol netrule.Protocol `json:"protocol"`
	// Interface is the NIC or ENI the port is reachable on (empty on a host).
	Interface string `json:"interface,omitempty"`
	// Address is the address the rules were evaluated for (the NIC's
	// private address; a host's public address).
	Address netip.Addr `json:"address,omitzero"`
	// ExampleSource is one internet address that gets through.
	ExampleSource netip.Addr `json:"exampleSource,omitzero"`
	// Rule is the rule that exposes the port: on Azure the allowing rule of
	// the last NSG on the path, on AWS the allowing permission.
	Rule netrule.RuleRef `json:"rule"`
	// Path lists every allowing rule on the way in (subnet NSG, NIC NSG).
	Path []netrule.RuleRef `json:"path,omitempty"`
}

// Assess classifies every VM of in.Inventory. The inventory should be valid
// (inventory.Validate); a VM whose objects are missing or malformed is
// reported not applicable with ReasonInventoryError rather than failing the
// whole report. The only error is an invalid extra port.
func Assess(in Input) (Report, error) {
	ports := ManagementPorts()
	for _, p := range in.ExtraPorts {
		if p < 1 || p > 65535 {
			return Report{}, fmt.Errorf("assessment: extraPorts: %d is not a port number (1-65535)", p)
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	slices.Sort(ports)
	a := newAssessor(in, ports)
	rep := Report{
		Recommendation: Recommendation{Title: Title, Severity: Severity,
			Description: "Inbound rules let the internet reach management ports of these virtual machines. Enable just-in-time access control to keep the ports closed until someone asks for access, and so protect the machines from internet-based brute-force attacks."},
		ManagementPorts: ports,
		Results:         make([]Result, len(in.Inventory.VMs)),
	}
	// VMs are independent: workers take blocks of consecutive VMs from a
	// shared counter until none is left (so a worker that drew cheap VMs,
	// e.g. AWS ones, does not sit idle while another finishes), each with
	// its own caches of compiled NSGs and groups (the indexes are shared
	// and read-only). Consecutive VMs tend to share subnets, so a block
	// keeps the caches warm.
	vms := in.Inventory.VMs
	workers := in.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, len(vms)/1000))
	const block = 512
	var next atomic.Int64
	var wg sync.WaitGroup
	// Fork before any worker starts: a running worker writes to its caches.
	was := []*assessor{a}
	for len(was) < workers {
		was = append(was, a.fork())
	}
	for _, wa := range was {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(block)) - block
				if lo >= len(vms) {
					return
				}
				for i := lo; i < min(lo+block, len(vms)); i++ {
					rep.Results[i] = wa.assess(&vms[i])
				}
			}
		}()
	}
	wg.Wait()
	for i := range rep.Results {
		switch rep.Results[i].Status {
		case Healthy:
			rep.Summary.Healthy++
		case Unhealthy:
			rep.Summary.Unhealthy++
		default:
			rep.Summary.NotApplicable++
		}
	}
	return rep, nil
}

// canEnforce says which clouds each built-in or planned provider enforces on.
func canEnforce(provider string, cloud inventory.Cloud) bool {
	switch provider {
	case inventory.ProviderSim:
		return cloud == inventory.Azure || cloud == inventory.AWS
	case inventory.ProviderNftables:
		return cloud == inventory.Host
	case inventory.ProviderAzure:
		return cloud == inventory.Azure
	case inventory.ProviderAWS:
		return cloud == inventory.AWS
	}
	return false
}

func (a *assessor) policy(vmID string) ([]PolicyPort, bool) {
	if len(a.in.Policies) == 0 {
		return nil, false
	}
	p, ok := a.in.Policies[vmID]
	if !ok {
		p, ok = a.in.Policies[inventory.Key(vmID)]
	}
	if ok && p == nil {
		p = []PolicyPort{}
	}
	return p, ok
}

func (a *assessor) assess(vm *inventory.VM) Result {
	res := Result{ID: vm.ID, Name: vm.Name, Cloud: vm.Cloud, Provider: vm.Provider, Location: vm.Location}
	res.JITPorts, _ = a.policy(vm.ID)
	na := func(r Reason, format string, args ...any) Result {
		res.Status, res.Reason, res.Detail = NotApplicable, r, fmt.Sprintf(format, args...)
		return res
	}
	// The order follows Defender's flow: can anything enforce here at all,
	// is the deployment supported, has the owner opted out, is there a
	// firewall JIT cannot change, is there anything to put rules in.
	if !canEnforce(vm.Provider, vm.Cloud) {
		return na(ReasonProviderCannotEnforce, "provider %q cannot enforce JIT on %q machines", vm.Provider, vm.Cloud)
	}
	if !a.providers[vm.Provider] {
		return na(ReasonProviderCannotEnforce, "provider %q is not running on this server", vm.Provider)
	}
	if vm.Cloud == inventory.Azure && vm.Classic {
		return na(ReasonClassic, "classic (Azure Service Manager) deployments are not supported by JIT")
	}
	if len(a.settings) > 0 {
		if id, err := resource.Parse(vm.ID); err == nil {
			for _, s := range a.settings {
				if s.Contains(id) {
					return na(ReasonJITDisabled, "JIT is switched off for %s by a setting", s)
				}
			}
		}
	}
	var exposures []Exposure
	switch vm.Cloud {
	case inventory.Azure:
		if vm.Firewall != "" {
			fw, ok := a.fws.get(vm.Firewall)
			if !ok {
				return na(ReasonInventoryError, "firewall %s is not in the inventory", vm.Firewall)
			}
			if fw.ManagedByFirewallManager {
				return na(ReasonFirewallManager, "behind Azure Firewall %s, which Azure Firewall Manager controls through firewall policies; JIT supports only firewalls configured with classic rules", fw.ID)
			}
		}
		var r Result
		var ok bool
		exposures, r, ok = a.azure(vm, res)
		if !ok {
			return r
		}
	case inventory.AWS:
		var r Result
		var ok bool
		exposures, r, ok = a.aws(vm, res)
		if !ok {
			return r
		}
	case inventory.Host:
		if !a.in.Agents[inventory.Key(vm.ID)] && !a.in.Agents[vm.ID] {
			return na(ReasonNoAgent, "no drawbridge agent is connected for this host")
		}
		exposures = a.host(vm)
	}
	for _, e := range exposures {
		if guarded(res.JITPorts, e.Port, e.Protocol) {
			res.StillReachable = append(res.StillReachable, e)
		} else {
			res.Exposures = append(res.Exposures, e)
		}
	}
	if len(res.Exposures) > 0 {
		res.Status = Unhealthy
	} else {
		res.Status = Healthy
	}
	return res
}

func guarded(ps []PolicyPort, port int, proto netrule.Protocol) bool {
	for _, p := range ps {
		if p.Number == port && (p.Protocol == "" || p.Protocol.Overlaps(proto) || strings.EqualFold(string(p.Protocol), string(proto))) {
			return true
		}
	}
	return false
}
