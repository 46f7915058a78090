package assess

import (
	"fmt"
	"net/netip"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// azure returns the management ports the internet reaches through each
// NIC's subnet and NIC NSGs (and the firewalls in front), or false with
// res NotApplicable when the VM's network cannot be worked out.
func (a *assessor) azure(vm *inventory.VM, res Result) ([]Exposure, Result, bool) {
	fail := func(r Reason, format string, args ...any) ([]Exposure, Result, bool) {
		res.Status, res.Reason, res.Detail = NotApplicable, r, fmt.Sprintf(format, args...)
		return nil, res, false
	}
	paths := a.paths[:0]
	defer func() { clear(paths); a.paths = paths[:0] }()
	hasNSG := false
	used := 0 // scratch NSGs compiled for this VM
	for _, id := range vm.NICs {
		nic, ok := a.nics.get(id)
		if !ok {
			return fail(ReasonInventoryError, "network interface %s is not in the inventory", id)
		}
		p := nicPath{nic: nic}
		subIdx := -1
		if nic.Subnet != "" {
			k, ok := a.subnets.find(nic.Subnet)
			if !ok {
				return fail(ReasonInventoryError, "network interface %s: subnet %s is not in the inventory", nic.ID, nic.Subnet)
			}
			subIdx = k
			sub := &a.subnets.list[k]
			if sub.NSG != "" {
				c, err := a.nsg(sub.NSG, &used)
				if err != nil {
					return fail(ReasonInventoryError, "subnet %s: %v", sub.ID, err)
				}
				p.path[0] = c
			}
		}
		if nic.NSG != "" {
			c, err := a.nsg(nic.NSG, &used)
			if err != nil {
				return fail(ReasonInventoryError, "network interface %s: %v", nic.ID, err)
			}
			p.path[1] = c
		}
		hasNSG = hasNSG || p.path[0] != nil || p.path[1] != nil
		p.env = a.env(nic, subIdx)
		paths = append(paths, p)
	}
	if !hasNSG {
		return fail(ReasonNoNetworkSecurity, "no network security group on any network interface or its subnet")
	}
	var out []Exposure
	for _, port := range a.ports {
	nics:
		for _, p := range paths {
			dests := p.nic.PrivateIPs
			if len(dests) == 0 {
				dests = []netip.Addr{{}}
			}
			for _, d := range dests {
				v := netrule.EvaluateAzureScratch(&a.eval, p.path[:], p.env, netrule.Query{Destination: d, Port: port, Protocol: netrule.Tcp, Source: p.env.InternetSource()})
				if v.Allowed {
					out = append(out, Exposure{Port: port, Protocol: netrule.Tcp, Interface: p.nic.ID, Address: d,
						ExampleSource: v.Example, Rule: v.Deciding(), Path: v.Rules})
					break nics
				}
			}
		}
	}
	out = append(out, a.firewallExposures(vm, paths, out)...)
	return out, res, true
}

// aws returns the management ports the internet reaches through each
// ENI's security groups, or false with res NotApplicable when the
// instance has none or its inventory is incomplete.
func (a *assessor) aws(vm *inventory.VM, res Result) ([]Exposure, Result, bool) {
	fail := func(r Reason, format string, args ...any) ([]Exposure, Result, bool) {
		res.Status, res.Reason, res.Detail = NotApplicable, r, fmt.Sprintf(format, args...)
		return nil, res, false
	}
	type eniGroups struct {
		eni    *inventory.ENI
		groups []*netrule.CompiledSG
	}
	var all []eniGroups
	for _, id := range vm.ENIs {
		eni, ok := a.enis.get(id)
		if !ok {
			return fail(ReasonInventoryError, "ENI %s is not in the inventory", id)
		}
		eg := eniGroups{eni: eni}
		for _, g := range eni.SecurityGroups {
			c, err := a.sg(g)
			if err != nil {
				return fail(ReasonInventoryError, "ENI %s: %v", eni.ID, err)
			}
			eg.groups = append(eg.groups, c)
		}
		if len(eg.groups) > 0 {
			all = append(all, eg)
		}
	}
	if len(all) == 0 {
		return fail(ReasonNoNetworkSecurity, "no security group on any network interface")
	}
	var out []Exposure
	src := a.awsEnv.InternetSource()
	for _, port := range a.ports {
		for _, eg := range all {
			v := netrule.EvaluateAWS(eg.groups, netrule.Query{Port: port, Protocol: netrule.Tcp, Source: src})
			if v.Allowed {
				var addr netip.Addr
				if len(eg.eni.PrivateIPs) > 0 {
					addr = eg.eni.PrivateIPs[0]
				}
				out = append(out, Exposure{Port: port, Protocol: netrule.Tcp, Interface: eg.eni.ID, Address: addr,
					ExampleSource: v.Example, Rule: v.Deciding(), Path: v.Rules})
				break
			}
		}
	}
	return out, res, true
}

// host reports a Linux host's management ports as reachable when it has a
// public address: drawbridge does not model a host's own firewall beyond
// what JIT puts there, so without a policy nothing is known to stop them.
func (a *assessor) host(vm *inventory.VM) []Exposure {
	internet := a.awsEnv.Internet()
	for _, addr := range vm.Addresses {
		if !internet.Contains(addr) {
			continue
		}
		out := make([]Exposure, 0, len(a.ports))
		for _, port := range a.ports {
			out = append(out, Exposure{Port: port, Protocol: netrule.Tcp, Address: addr,
				Rule: netrule.RuleRef{Group: vm.ID, Rule: "no drawbridge policy on a host with a public address", Access: netrule.Allow, Source: "*"}})
		}
		return out
	}
	return nil
}
