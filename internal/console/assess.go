package console

import (
	"context"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/assess"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
)

// estate is one read of everything the VM list and the recommendation
// look at: the inventory, the policies, the active grants and the
// assessment built from them (the same input the API's assessment uses).
type estate struct {
	inv      inventory.Inventory
	policies []jit.Policy
	// policyOf maps inventory.Key(vmID) to the VM's policy and its entry.
	policyOf map[string]policyRef
	active   []jit.Grant
	report   assess.Report
	// resultOf maps inventory.Key(vmID) to its index in report.Results.
	resultOf map[string]int
}

type policyRef struct {
	policy *jit.Policy
	vm     jit.VMPolicy
}

// loadEstate reads the estate and assesses it, and keeps the result as the
// VM list's snapshot. Request history (the portal's "last access" counts)
// is not read: the console does not show it.
func (c *Console) loadEstate(ctx context.Context) (*estate, error) {
	svc := c.cfg.Service
	began := time.Now()
	inv, err := svc.Inventory(ctx)
	if err != nil {
		return nil, err
	}
	policies, err := svc.ListPolicies(ctx, "/", "")
	if err != nil {
		return nil, err
	}
	active, err := svc.ListGrants(ctx, jit.GrantFilter{ActiveOnly: true})
	if err != nil {
		return nil, err
	}
	e := &estate{inv: inv, policies: policies, active: active, policyOf: map[string]policyRef{}}
	in := assess.Input{Inventory: inv, Policies: map[string][]assess.PolicyPort{}, Providers: []string{}}
	for i := range policies {
		p := &policies[i]
		for _, v := range p.DistinctVMs() {
			e.policyOf[inventory.Key(v.ID)] = policyRef{policy: p, vm: v}
			ports := make([]assess.PolicyPort, 0, len(v.Ports))
			for _, port := range v.Ports {
				ports = append(ports, assess.PolicyPort{Number: port.Number, Protocol: port.Protocol})
			}
			in.Policies[inventory.Key(v.ID)] = ports
		}
	}
	if conn, ok := c.cfg.Agents.(interface{ Connected(vmID string) bool }); ok {
		in.Agents = map[string]bool{}
		for _, vm := range inv.VMs {
			if vm.Cloud == inventory.Host && conn.Connected(vm.ID) {
				in.Agents[inventory.Key(vm.ID)] = true
			}
		}
	}
	for _, name := range []string{inventory.ProviderSim, inventory.ProviderNftables, inventory.ProviderAzure, inventory.ProviderAWS} {
		if svc.RunsProvider(name) {
			in.Providers = append(in.Providers, name)
		}
	}
	if e.report, err = assess.Assess(in); err != nil {
		return nil, err
	}
	e.resultOf = make(map[string]int, len(e.report.Results))
	for i, res := range e.report.Results {
		e.resultOf[inventory.Key(res.ID)] = i
	}
	c.remember(e, began)
	return e, nil
}

// fixPlan is the assessment's plan limited to the VMs named (all
// unhealthy ones when none are named).
func (e *estate) fixPlan(vms []string) assess.FixPlan {
	plan := assess.Fix(e.report)
	if len(vms) == 0 {
		return plan
	}
	want := map[string]bool{}
	for _, id := range vms {
		want[strings.ToLower(id)] = true
	}
	kept := plan.VirtualMachines[:0:0]
	for _, vm := range plan.VirtualMachines {
		if want[strings.ToLower(vm.ID)] {
			kept = append(kept, vm)
		}
	}
	plan.VirtualMachines = kept
	return plan
}
