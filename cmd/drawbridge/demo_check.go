//go:build !drawbridge_client

package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
)

// The demo's port check: who can open a new connection to an Azure VM's
// port, asked of the NSGs the server reports (GET /drawbridge/v1/network),
// with the same evaluator the assessment uses (netrule.EvaluateAzure).

// from is one source the port check asks about.
type from int

const (
	fromInternet  from = iota // any public address
	fromVNet                  // any address of the virtual network
	fromRequester             // demoSource
	fromOthers                // the internet but demoSource
)

func (f from) String() string {
	return [...]string{"the internet", "the virtual network", demoSource + " (you)", "the rest of the internet"}[f]
}

// checkPort prints whether each source in want reaches vm's port through
// the NSGs of view, and fails if one does not get the answer want gives.
func (d *demo) checkPort(vm api.VMSummary, view sim.View, port int, want map[from]bool) error {
	dest, vnet, err := sampleAddrs(vm.ID)
	if err != nil {
		return err
	}
	var path []*netrule.CompiledNSG
	for _, n := range view.NetworkSecurityGroups {
		var rules []netrule.SecurityRule
		for _, r := range n.SecurityRules {
			if r.Priority <= netrule.MaxPriority { // the evaluator adds the defaults
				rules = append(rules, r)
			}
		}
		c, err := netrule.CompileNSG(netrule.NSG{ID: n.ID, Name: n.Name, SecurityRules: rules})
		if err != nil {
			return fmt.Errorf("port check: %w", err)
		}
		path = append(path, c)
	}
	env := netrule.NewEnv(vnet...)
	req := netip.MustParseAddr(demoSource)
	sources := map[from]netrule.Source{
		fromInternet:  env.InternetSource(),
		fromVNet:      {Set: env.VirtualNetwork(), Label: netrule.TagVirtualNetwork},
		fromRequester: netrule.AddressSource(req),
		fromOthers:    {Set: env.Internet().Subtract(netrule.AddrSet(req)), Label: "Internet"},
	}
	fmt.Fprintf(d.w, "Who can open a new connection to %s (%s) on port %d/TCP:\n\n", vm.Name, dest, port)
	t := newTable(d.w, "FROM", "PORT "+strconv.Itoa(port), "DECIDED BY (NSG RULE, PRIORITY)")
	var failed []string
	for f := fromInternet; f <= fromOthers; f++ {
		w, ok := want[f]
		if !ok {
			continue
		}
		v := netrule.EvaluateAzure(path, env, netrule.Query{Destination: dest, Port: port, Protocol: netrule.Tcp, Source: sources[f]})
		state := "closed"
		if v.Allowed {
			state = "OPEN"
		}
		r := v.Deciding()
		t.row(f.String(), state, shortName(r.Rule)+", "+strconv.Itoa(r.Priority))
		if v.Allowed != w {
			failed = append(failed, fmt.Sprintf("from %s the port is %s", f, state))
		}
	}
	t.flush()
	if len(failed) > 0 {
		return fmt.Errorf("check failed: %s", strings.Join(failed, "; "))
	}
	return nil
}

// sampleAddrs returns the private address of the sample VM's first NIC and
// its virtual network's address space (the demo runs on the built-in
// sample inventory).
func sampleAddrs(vmID string) (netip.Addr, []netip.Prefix, error) {
	inv := inventory.Sample()
	var nicID string
	for _, vm := range inv.VMs {
		if strings.EqualFold(vm.ID, vmID) && len(vm.NICs) > 0 {
			nicID = vm.NICs[0]
		}
	}
	var vnet []netip.Prefix
	for _, n := range inv.VirtualNetworks {
		vnet = append(vnet, n.AddressSpace...)
	}
	for _, n := range inv.NICs {
		if strings.EqualFold(n.ID, nicID) && len(n.PrivateIPs) > 0 {
			return n.PrivateIPs[0], vnet, nil
		}
	}
	return netip.Addr{}, nil, fmt.Errorf("port check: the sample inventory has no NIC address for %s", lastSegment(vmID))
}

// shortName elides the middle of drawbridge's long rule and group names
// (drawbridge-jit-deny-<hash>-<vm>-<port>-<protocol>,
// drawbridge-jit-allow-<hash>-<grant ID>) so tables fit 80 columns; the
// changes listed under each step give them whole.
func shortName(n string) string {
	const most = 30
	if len(n) <= most {
		return n
	}
	if strings.HasPrefix(n, sim.RulePrefix+"deny-") {
		if p := strings.Split(n, "-"); len(p) >= 2 {
			return sim.RulePrefix + "deny-…-" + p[len(p)-2] + "-" + p[len(p)-1]
		}
	}
	if i := strings.LastIndexByte(n[:most-8], '-'); i > 0 {
		return n[:i+1] + "…" + n[len(n)-6:]
	}
	return n[:most-7] + "…" + n[len(n)-6:]
}
