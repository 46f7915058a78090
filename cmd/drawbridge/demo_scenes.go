//go:build !drawbridge_client

package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/assess"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// The demo's scenarios and their steps: enable JIT, one grant's life.

// scene is one scenario of the demo: a VM of the sample inventory and
// what to show on it.
type scene struct {
	title, name string
	intro       string
	// check: who reaches port 22 (Azure), before JIT, after enabling it
	// and (with a grant) while the grant is open and after it ended.
	check           bool
	before, enabled map[from]bool
	assess, grant   bool
	beforeA, afterA assess.Status // with assess: the wanted statuses
	outro           string
}

func demoScenes() []scene {
	open := map[from]bool{fromInternet: false, fromVNet: true}
	return []scene{
		{title: "Azure: JIT closes SSH on app-01", name: "app-01", check: true, grant: true,
			before: open, enabled: map[from]bool{fromInternet: false, fromVNet: false},
			intro: "app-01's subnet NSG allows only HTTPS from the internet, but SSH (22) is open to every " +
				"address of the virtual network through Azure's default rule AllowVnetInBound: any machine " +
				"there, a compromised one too, can log in. Enabling JIT adds a deny rule ahead of every " +
				"rule for the port; a grant adds an allow rule for one address ahead of the deny rule."},
		{title: "Azure: a user rule keeps SSH open on web-01", name: "web-01", check: true, assess: true,
			before:  map[from]bool{fromInternet: true, fromVNet: true},
			enabled: map[from]bool{fromInternet: true, fromVNet: false},
			beforeA: assess.Unhealthy, afterA: assess.Healthy,
			intro: "web-01's NSG has the user's rule AllowSSHFromInternet (priority 1000). As in Defender " +
				"for Cloud, rules that already cover a port keep their priority: JIT's deny rule goes after " +
				"them and nothing is renumbered, so this rule still lets the internet in.",
			outro: "The assessment counts web-01 as protected and warns about the rule. Delete " +
				"AllowSSHFromInternet and SSH is closed as on app-01."},
		{title: "AWS: JIT closes SSH on bastion", name: "bastion", assess: true, grant: true,
			beforeA: assess.Unhealthy, afterA: assess.Healthy,
			intro: "bastion's security group ssh-open allows 22 from 0.0.0.0/0. Security groups only " +
				"allow: enabling JIT revokes the permissions that cover the port and keeps them to put " +
				"back when JIT is disabled; a grant attaches a new security group allowing one source."},
	}
}

// enableJIT puts a policy guarding port 22 (any source, at most three
// hours) and shows what it changed; it returns the policy's ID and the
// firewall after it.
func (d *demo) enableJIT(vm api.VMSummary, before sim.View) (string, sim.View, error) {
	rid, err := resource.Parse(vm.ID)
	if err != nil {
		return "", sim.View{}, err
	}
	policyID := jit.PolicyID(rid.Subscription(), rid.ResourceGroup(), vm.Location, "default")
	body := api.PolicyResource{Kind: "Basic", Location: vm.Location, Properties: api.PolicyProperties{VirtualMachines: []jit.VMPolicy{{
		ID: vm.ID, Ports: []jit.PortPolicy{{Number: 22, Protocol: netrule.Protocol("TCP"), AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}},
	}}}}
	pol, err := d.c.PutPolicy(d.ctx, policyID, body)
	if err != nil {
		return "", sim.View{}, fmt.Errorf("enable JIT: %w", err)
	}
	if pol.Properties.ProvisioningState != jit.ProvisioningSucceeded {
		return "", sim.View{}, fmt.Errorf("check failed: policy provisioning state is %q (%s), want Succeeded", pol.Properties.ProvisioningState, pol.Properties.ProvisioningError)
	}
	d.sub("Enable JIT on port 22 (PUT …/jitNetworkAccessPolicies/default)")
	printDemoPolicy(d.w, pol, d.names)
	enabled, err := d.c.Network(d.ctx, vm.ID)
	if err != nil {
		return "", sim.View{}, err
	}
	added, removed := viewDiff(before, enabled)
	if len(added)+len(removed) == 0 {
		return "", sim.View{}, errors.New("check failed: enabling JIT did not change the firewall")
	}
	d.sub("After enabling JIT")
	printChanges(d.w, added, removed)
	fmt.Fprintln(d.w)
	printDemoView(d.w, enabled)
	return policyID, enabled, nil
}

// grantCycle requests port 22 for a few seconds from demoSource, shows
// what the grant opened, waits until it expired and checks that the
// firewall is back to enabled.
func (d *demo) grantCycle(s scene, vm api.VMSummary, enabled sim.View) error {
	ctx, w, c := d.ctx, d.w, d.c
	d.sub(fmt.Sprintf("Request port 22 for %s from %s", demoDuration, demoSource))
	req, err := c.Request(ctx, api.SimpleRequest{VM: vm.ID, Ports: []int{22}, Duration: demoDuration.String(), Source: demoSource, Justification: "drawbridge demo"})
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	printDemoRequest(w, req, d.names)
	if len(req.VirtualMachines) != 1 || len(req.VirtualMachines[0].Ports) != 1 {
		return fmt.Errorf("check failed: the request produced %d VM entries, want one grant", len(req.VirtualMachines))
	}
	grant := req.VirtualMachines[0].Ports[0]
	if grant.Status != jit.StatusInitiated || !grant.Applied {
		return fmt.Errorf("check failed: the grant is %s (applied %v, %s), want Initiated and applied", grant.Status, grant.Applied, grant.ProviderError)
	}
	open, err := c.Network(ctx, vm.ID)
	if err != nil {
		return err
	}
	added, removed := viewDiff(enabled, open)
	d.sub("What the grant opened")
	printChanges(w, added, removed)
	if len(removed) != 0 || len(added) == 0 {
		return fmt.Errorf("check failed: the grant removed %d and added %d firewall entries; want only additions", len(removed), len(added))
	}
	if !strings.Contains(strings.Join(added, "\n"), demoSource) {
		return fmt.Errorf("check failed: no added firewall entry mentions the source %s", demoSource)
	}
	if s.check {
		fmt.Fprintln(w)
		if err := d.checkPort(vm, open, 22, map[from]bool{fromRequester: true, fromOthers: false, fromVNet: false}); err != nil {
			return err
		}
	}

	// Watch the grant through the API until the server has revoked it.
	g, err := d.waitExpired(vm.ID, grant.GrantID, grant.EndTimeUtc)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "grant %s (%s) at %s\n", g.Status, safeText(string(g.StatusReason)), fmtTime(g.EndedAt))
	restored, err := d.waitView(vm.ID, enabled)
	d.sub("After the grant ended: what changed")
	added, removed = viewDiff(open, restored)
	printChanges(w, added, removed)
	if err != nil {
		return fmt.Errorf("check failed: after expiry the firewall differs from the state after enabling JIT: %w", err)
	}
	fmt.Fprintln(w)
	d.say(fmt.Sprintf("Identical to the state after enabling JIT (%s compared as JSON, byte for byte).", countEntries(restored)))
	if s.check {
		fmt.Fprintln(w)
		return d.checkPort(vm, restored, 22, map[from]bool{fromRequester: false, fromVNet: false})
	}
	return nil
}
