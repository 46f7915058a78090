package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/assess"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/resource"
	"github.com/drawbridge/drawbridge/internal/server"
)

// The demo's fixed requester address (benchmarking range, never real
// internet space) and how long its grants last.
const (
	demoSource   = "198.18.0.77"
	demoDuration = 5 * time.Second
)

func (a *app) demoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Lock, open and restore a management port on a simulated Azure VM and AWS instance",
		Long: `Start an in-process server with a temporary database and the built-in sample
inventory, then, through the REST API: enable JIT on an Azure VM and an AWS
instance that expose SSH to the internet, open port 22 for a few seconds from
one address, wait for the grant to expire, and check that the firewall is
restored exactly (and, after disabling JIT, exactly as it was before).`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.Context(), a.stdout)
		},
	}
}

type demo struct {
	ctx context.Context
	w   io.Writer
	c   *client.Client
}

// runDemo runs the whole demo and returns an error naming the first check
// that failed.
func runDemo(ctx context.Context, w io.Writer) error {
	began := time.Now()
	dir, err := os.MkdirTemp("", "drawbridge-demo-")
	if err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	srv, err := server.Start(ctx, server.Config{Listen: "127.0.0.1:0", DBPath: filepath.Join(dir, "demo.db"), SampleInventory: true})
	if err != nil {
		return err
	}
	defer srv.Close()
	c, err := client.New(srv.URL, srv.AdminToken)
	if err != nil {
		return err
	}
	d := &demo{ctx: ctx, w: w, c: c}

	d.heading("drawbridge demo")
	fmt.Fprintf(w, "An in-process server runs at %s with a temporary SQLite database and the\n", srv.URL)
	fmt.Fprintln(w, "built-in sample inventory (simulated Azure and AWS networks). Everything below")
	fmt.Fprintln(w, "goes through its REST API, as the CLI does.")
	fmt.Fprintln(w)
	vms, err := c.VMs(ctx)
	if err != nil {
		return err
	}
	printVMs(w, vms, false)

	steps := []struct {
		title, name string
	}{
		{"Azure: VM web-01, whose NSG allows SSH (22) from the internet", "web-01"},
		{"AWS: instance bastion, whose security group ssh-open allows 22 from 0.0.0.0/0", "bastion"},
	}
	for i, s := range steps {
		var vm api.VMSummary
		for _, v := range vms {
			if v.Name == s.name {
				vm = v
			}
		}
		if vm.ID == "" {
			return fmt.Errorf("check failed: the sample inventory has no VM %s", s.name)
		}
		if err := d.scenario(i+1, s.title, vm); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if err := d.firewallScenario(len(steps) + 1); err != nil {
		return fmt.Errorf("jump-01: %w", err)
	}
	d.heading("Done")
	fmt.Fprintf(w, "Every check passed in %.1fs: on both clouds the firewall went back, rule for rule,\n", time.Since(began).Seconds())
	fmt.Fprintln(w, "to its state after enabling JIT when the grant expired, and to its original state")
	fmt.Fprintln(w, "when JIT was disabled.")
	return nil
}

func (d *demo) heading(s string) {
	fmt.Fprintf(d.w, "\n== %s ==\n\n", s)
}

func (d *demo) sub(s string) {
	fmt.Fprintf(d.w, "\n-- %s --\n\n", s)
}

func (d *demo) scenario(n int, title string, vm api.VMSummary) error {
	ctx, w, c := d.ctx, d.w, d.c
	d.heading(fmt.Sprintf("%d. %s", n, title))
	if vm.Cloud == string(inventory.Azure) {
		fmt.Fprintln(w, "Enabling JIT adds a deny rule for the port. As in Azure, rules that already")
		fmt.Fprintln(w, "cover the port keep their priority (the deny rule goes after them, nothing is")
		fmt.Fprintln(w, "renumbered); a grant adds an allow rule ahead of the deny rule.")
	} else {
		fmt.Fprintln(w, "Security groups only allow. Enabling JIT revokes the ingress permissions that")
		fmt.Fprintln(w, "cover the port and keeps them to put back when JIT is disabled; a grant")
		fmt.Fprintln(w, "attaches a new security group allowing the source to the instance's ENI.")
	}
	rules := "security groups on its network interface"
	if vm.Cloud == string(inventory.Azure) {
		rules = "inbound NSG rules, in evaluation order"
	}

	before, err := c.Network(ctx, vm.ID)
	if err != nil {
		return err
	}
	d.sub("Before JIT: " + rules)
	printView(w, before, true)
	if err := d.demoAssessment("Assessment before JIT", vm, assess.Unhealthy); err != nil {
		return err
	}

	// Enable JIT: port 22, any source, at most three hours.
	rid, err := resource.Parse(vm.ID)
	if err != nil {
		return err
	}
	policyID := jit.PolicyID(rid.Subscription(), rid.ResourceGroup(), vm.Location, "default")
	body := api.PolicyResource{Kind: "Basic", Location: vm.Location, Properties: api.PolicyProperties{VirtualMachines: []jit.VMPolicy{{
		ID: vm.ID, Ports: []jit.PortPolicy{{Number: 22, Protocol: netrule.Protocol("TCP"), AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}},
	}}}}
	pol, err := c.PutPolicy(ctx, policyID, body)
	if err != nil {
		return fmt.Errorf("enable JIT: %w", err)
	}
	if pol.Properties.ProvisioningState != jit.ProvisioningSucceeded {
		return fmt.Errorf("check failed: policy provisioning state is %q (%s), want Succeeded", pol.Properties.ProvisioningState, pol.Properties.ProvisioningError)
	}
	d.sub("Enable JIT (PUT " + policyID + ")")
	printPolicy(w, pol, false)
	enabled, err := c.Network(ctx, vm.ID)
	if err != nil {
		return err
	}
	added, removed := viewDiff(before, enabled)
	if len(added)+len(removed) == 0 {
		return errors.New("check failed: enabling JIT did not change the firewall")
	}
	d.sub("After enabling JIT: what changed")
	printChanges(w, added, removed)
	d.sub("After enabling JIT: " + rules)
	printView(w, enabled, true)
	if err := d.demoAssessment("Assessment after enabling JIT", vm, assess.Healthy); err != nil {
		return err
	}

	// Request port 22 for a few seconds from one address.
	d.sub(fmt.Sprintf("Request port 22 for %s from %s", demoDuration, demoSource))
	req, err := c.Request(ctx, api.SimpleRequest{VM: vm.ID, Ports: []int{22}, Duration: demoDuration.String(), Source: demoSource, Justification: "drawbridge demo"})
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	printRequest(w, req)
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
	added, removed = viewDiff(enabled, open)
	d.sub("What the grant opened")
	printChanges(w, added, removed)
	if len(removed) != 0 || len(added) == 0 {
		return fmt.Errorf("check failed: the grant removed %d and added %d firewall entries; want only additions", len(removed), len(added))
	}
	if !strings.Contains(strings.Join(added, "\n"), demoSource) {
		return fmt.Errorf("check failed: no added firewall entry mentions the source %s", demoSource)
	}

	// Watch the grant through the API until the server has revoked it.
	g, err := d.waitExpired(vm.ID, grant.GrantID, grant.EndTimeUtc)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "grant %s: %s (%s) at %s\n", g.ID, g.Status, g.StatusReason, fmtTime(g.EndedAt))

	restored, err := d.waitView(vm.ID, enabled)
	d.sub("After expiry: " + rules)
	printView(w, restored, true)
	if err != nil {
		return fmt.Errorf("check failed: after expiry the firewall differs from the state after enabling JIT: %w", err)
	}
	fmt.Fprintf(w, "\nIdentical to the state after enabling JIT (%s compared as JSON, byte for byte).\n", countEntries(restored))

	// Disable JIT.
	if err := c.DeletePolicy(ctx, policyID); err != nil {
		return fmt.Errorf("disable JIT: %w", err)
	}
	back, err := d.waitView(vm.ID, before)
	d.sub("Disable JIT (DELETE the policy): " + rules)
	printView(w, back, true)
	if err != nil {
		return fmt.Errorf("check failed: after disabling JIT the firewall differs from the state before enabling it: %w", err)
	}
	fmt.Fprintf(w, "\nIdentical to the state before JIT was enabled (%s compared).\n", countEntries(back))
	return nil
}

// waitExpired polls the grant until the server reports it Revoked,
// printing a countdown to its end time.
func (d *demo) waitExpired(vmID, grantID string, end time.Time) (jit.Grant, error) {
	fmt.Fprintf(d.w, "\nwaiting for the grant to expire at %s:", fmtTime(end))
	deadline := end.Add(10 * time.Second)
	last := int64(-1)
	for {
		g, err := d.c.Grant(d.ctx, vmID, grantID)
		if err != nil {
			fmt.Fprintln(d.w)
			return g, err
		}
		// The firewall itself is checked next (waitView): the service does
		// not mark a revoked grant applied once the provider removed it.
		if g.Status == jit.StatusRevoked {
			fmt.Fprintln(d.w, " expired")
			if g.StatusReason != jit.ReasonExpired {
				return g, fmt.Errorf("check failed: the grant ended with reason %s, want Expired", g.StatusReason)
			}
			return g, nil
		}
		if left := time.Until(end); left > 0 {
			if s := int64((left + time.Second - 1) / time.Second); s != last {
				fmt.Fprintf(d.w, " %d", s)
				last = s
			}
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(d.w)
			return g, fmt.Errorf("check failed: the grant is still %s (applied %v) 10s after its end time", g.Status, g.Applied)
		}
		select {
		case <-d.ctx.Done():
			return g, d.ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitView polls the VM's firewall until it equals want (as JSON), for a
// few seconds. It returns the last view seen and, if it never matched, an
// error listing the differences.
func (d *demo) waitView(vmID string, want sim.View) (sim.View, error) {
	wantJSON, err := json.Marshal(want)
	if err != nil {
		return sim.View{}, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := d.c.Network(d.ctx, vmID)
		if err != nil {
			return got, err
		}
		gotJSON, err := json.Marshal(got)
		if err != nil {
			return got, err
		}
		if bytes.Equal(gotJSON, wantJSON) {
			return got, nil
		}
		if time.Now().After(deadline) {
			added, removed := viewDiff(want, got)
			return got, fmt.Errorf("extra: [%s]; missing: [%s]", strings.Join(added, "; "), strings.Join(removed, "; "))
		}
		select {
		case <-d.ctx.Done():
			return got, d.ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func printChanges(w io.Writer, added, removed []string) {
	if len(added)+len(removed) == 0 {
		fmt.Fprintln(w, "  (no change)")
	}
	for _, s := range removed {
		fmt.Fprintln(w, "  - "+s)
	}
	for _, s := range added {
		fmt.Fprintln(w, "  + "+s)
	}
}

// viewEntries describes each firewall entry of a view on one line: NSG
// rules (Azure) or attached groups and their permissions (AWS).
func viewEntries(v sim.View) []string {
	var out []string
	for _, nsg := range v.NetworkSecurityGroups {
		for _, r := range nsg.SecurityRules {
			c := nsgRuleCells(r)
			out = append(out, fmt.Sprintf("NSG %s rule %s: priority %s %s %s %s from %s port %s to %s port %s",
				nsg.Name, c[1], c[0], c[2], c[3], c[4], c[5], c[6], c[7], c[8]))
		}
	}
	for _, eni := range v.NetworkInterfaces {
		for _, g := range eni.Groups {
			out = append(out, fmt.Sprintf("ENI %s: security group %s (%s) attached", eni.NetworkInterfaceID, g.GroupID, g.GroupName))
			for _, p := range g.IPPermissions {
				for _, src := range permissionSources(p) {
					out = append(out, fmt.Sprintf("ENI %s: security group %s (%s) allows %s port %s from %s",
						eni.NetworkInterfaceID, g.GroupID, g.GroupName, sgProtocol(p), sgPorts(p), src))
				}
			}
		}
	}
	return out
}

func countEntries(v sim.View) string {
	rules, groups := 0, 0
	for _, nsg := range v.NetworkSecurityGroups {
		rules += len(nsg.SecurityRules)
	}
	for _, eni := range v.NetworkInterfaces {
		groups += len(eni.Groups)
		for _, g := range eni.Groups {
			rules += len(g.IPPermissions)
		}
	}
	if groups > 0 {
		return fmt.Sprintf("%d security groups with %d permissions", groups, rules)
	}
	return fmt.Sprintf("%d rules", rules)
}

// viewDiff returns the entries of b not in a (added) and of a not in b
// (removed), counting duplicates.
func viewDiff(a, b sim.View) (added, removed []string) {
	count := map[string]int{}
	for _, e := range viewEntries(a) {
		count[e]++
	}
	for _, e := range viewEntries(b) {
		if count[e] > 0 {
			count[e]--
		} else {
			added = append(added, e)
		}
	}
	for _, e := range viewEntries(a) {
		if count[e] > 0 {
			count[e]--
			removed = append(removed, e)
		}
	}
	return added, removed
}
