//go:build !drawbridge_client

package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/assess"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// The demo's Azure Firewall section: a VM reached only through a classic
// Azure Firewall gets a DNAT rule for a grant, and the firewall and its
// NSG go back exactly at expiry and on disable.

// firewallScenario adds inventory.SampleClassicFirewall through the API and
// runs enable → request → expiry → disable on jump-01.
func (d *demo) firewallScenario(n int) error {
	ctx, w, c := d.ctx, d.w, d.c
	frag := inventory.SampleClassicFirewall()
	doc, err := json.Marshal(frag)
	if err != nil {
		return err
	}
	if _, err := c.ApplyInventory(ctx, doc); err != nil {
		return fmt.Errorf("apply the firewall fragment: %w", err)
	}
	vmInv := frag.VMs[0]
	vm := api.VMSummary{ID: vmInv.ID, Name: vmInv.Name, Cloud: string(vmInv.Cloud), Location: vmInv.Location}
	d.heading(fmt.Sprintf("%d. Azure Firewall: jump-01, reached through edge-fw", n))
	fmt.Fprintln(w, "jump-01 has no public IP; edge-fw's DNAT rules forward its public IP to it. A")
	fmt.Fprintln(w, "grant adds a DNAT rule to the firewall (from the requester only, on a free port")
	fmt.Fprintln(w, "of its public IP) and an NSG allow rule from the firewall's subnet, which is")
	fmt.Fprintln(w, "where DNAT traffic comes from. A firewall managed by Firewall Manager (a")
	fmt.Fprintln(w, "firewall policy) is not applicable, as fw-01 shows.")

	before, err := c.Network(ctx, vm.ID)
	if err != nil {
		return err
	}
	d.sub("Before JIT: the firewall's NAT rules")
	printFirewall(d, before)
	if err := d.demoAssessment("Assessment before JIT", vm, assess.Unhealthy); err != nil {
		return err
	}
	rid, err := resource.Parse(vm.ID)
	if err != nil {
		return err
	}
	policyID := jit.PolicyID(rid.Subscription(), rid.ResourceGroup(), vm.Location, "jump")
	port := func(n int) jit.PortPolicy {
		return jit.PortPolicy{Number: n, Protocol: netrule.Protocol("TCP"), AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}
	}
	body := api.PolicyResource{Kind: "Basic", Location: vm.Location, Properties: api.PolicyProperties{VirtualMachines: []jit.VMPolicy{{
		ID: vm.ID, Ports: []jit.PortPolicy{port(22), port(3389)}}}}}
	if _, err := c.PutPolicy(ctx, policyID, body); err != nil {
		return fmt.Errorf("enable JIT: %w", err)
	}
	enabled, err := c.Network(ctx, vm.ID)
	if err != nil {
		return err
	}
	d.sub("Enable JIT on 22 and 3389: what changed")
	added, removed := viewDiff(before, enabled)
	printChanges(w, added, removed)
	if err := d.demoAssessment("Assessment after enabling JIT", vm, assess.Healthy); err != nil {
		return err
	}

	if err := d.firewallGrant(vm, enabled); err != nil {
		return err
	}
	if err := c.DeletePolicy(ctx, policyID); err != nil {
		return fmt.Errorf("disable JIT: %w", err)
	}
	if _, err := d.waitView(vm.ID, before); err != nil {
		return fmt.Errorf("check failed: after disabling JIT the firewall or NSG differs from before: %w", err)
	}
	fmt.Fprintln(w, "Firewall and NSG identical to the state before JIT was enabled.")
	return nil
}

// firewallGrant requests port 22 on vm, shows the DNAT rule and NSG allow
// rule it adds, and waits for the expiry to restore enabled exactly.
func (d *demo) firewallGrant(vm api.VMSummary, enabled sim.View) error {
	ctx, w, c := d.ctx, d.w, d.c
	d.sub(fmt.Sprintf("Request port 22 for %s from %s", demoDuration, demoSource))
	req, err := c.Request(ctx, api.SimpleRequest{VM: vm.ID, Ports: []int{22}, Duration: demoDuration.String(), Source: demoSource, Justification: "drawbridge demo"})
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	if len(req.VirtualMachines) != 1 || len(req.VirtualMachines[0].Ports) != 1 || !req.VirtualMachines[0].Ports[0].Applied {
		return fmt.Errorf("check failed: the request through the firewall was not applied: %+v", req.VirtualMachines)
	}
	grant := req.VirtualMachines[0].Ports[0]
	open, err := c.Network(ctx, vm.ID)
	if err != nil {
		return err
	}
	added, removed := viewDiff(enabled, open)
	d.sub("What the grant opened")
	printChanges(w, added, removed)
	dnat := dnatLines(open)
	for _, l := range dnat {
		fmt.Fprintln(w, "  + "+l)
	}
	if len(dnat) != 1 || !strings.Contains(dnat[0], demoSource) {
		return fmt.Errorf("check failed: want one JIT DNAT rule from %s, have %v", demoSource, dnat)
	}
	if grant.ConnectTo == "" || !strings.Contains(dnat[0], " to "+grant.ConnectTo+" ") {
		return fmt.Errorf("check failed: the grant's connectTo %q is not where its DNAT rule listens: %v", grant.ConnectTo, dnat)
	}
	fmt.Fprintf(w, "The request's answer tells the requester: connect to %s.\n", grant.ConnectTo)
	g, err := d.waitExpired(vm.ID, grant.GrantID, grant.EndTimeUtc)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "grant %s:\n  %s (%s) at %s\n", g.ID, g.Status, g.StatusReason, fmtTime(g.EndedAt))
	if _, err := d.waitView(vm.ID, enabled); err != nil {
		return fmt.Errorf("check failed: after expiry the firewall or NSG differs from the state after enabling JIT: %w", err)
	}
	fmt.Fprintln(w, "\nFirewall and NSG identical to the state after enabling JIT (byte for byte).")
	return nil
}

// printFirewall prints the NAT rules of the classic firewall in a view.
func printFirewall(d *demo, v sim.View) {
	if v.Firewall == nil {
		fmt.Fprintln(d.w, "  (no firewall)")
		return
	}
	fmt.Fprintf(d.w, "Azure Firewall %s (classic rules), public IP %v,\nAzureFirewallSubnet %s\n", lastSegment(v.Firewall.ID), v.Firewall.PublicIPs, v.Firewall.SubnetPrefix)
	for _, l := range natLines(v.Firewall, "") {
		fmt.Fprintln(d.w, "  "+l)
	}
}

// dnatLines describes JIT's DNAT rules in a view.
func dnatLines(v sim.View) []string {
	if v.Firewall == nil {
		return nil
	}
	return natLines(v.Firewall, sim.FirewallCollection)
}

func natLines(fw *inventory.Firewall, only string) []string {
	var out []string
	for _, c := range fw.NatRuleCollections {
		if only != "" && c.Name != only {
			continue
		}
		for _, r := range c.Rules {
			// Two lines, so that the demo fits 80 columns.
			out = append(out, fmt.Sprintf("%s/%s (priority %d) DNAT %s:\n      from %s to %s:%s %s -> %s:%s",
				lastSegment(fw.ID), c.Name, c.Priority, shortName(r.Name), strings.Join(r.SourceAddresses, ","), strings.Join(r.DestinationAddresses, ","),
				strings.Join(r.DestinationPorts, ","), strings.Join(r.Protocols, ","), r.TranslatedAddress, r.TranslatedPort))
		}
	}
	return out
}
