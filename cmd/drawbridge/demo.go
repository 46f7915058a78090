//go:build !drawbridge_client

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/server"
)

// The demo's fixed requester address (benchmarking range, never real
// internet space) and how long its grants last.
const (
	demoSource   = "198.18.0.77"
	demoDuration = 3 * time.Second
)

func (a *app) demoCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Lock, open and restore a management port on simulated Azure VMs and an AWS instance",
		Long: `Start an in-process server with a temporary database and the built-in sample
inventory, then, through the REST API: enable JIT on the Azure VM app-01 (SSH
open to its virtual network) and see it closed, open port 22 for a few seconds
from one address, wait for the grant to expire, and check that the firewall is
restored exactly (and, after disabling JIT, exactly as it was before); see a
user's rule keep SSH open on web-01 after JIT, as in Defender; then the same
cycle on the AWS instance bastion.`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDemo(cmd.Context(), a.stdout)
		},
	}
}

type demo struct {
	ctx   context.Context
	w     io.Writer
	c     *client.Client
	names map[string]string // VM ID (lower case) → short name, as vm list shows it

	shownRec bool // the assessment's recommendation title was printed
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
	d := &demo{ctx: ctx, w: w, c: c, names: map[string]string{}}

	d.heading("drawbridge demo")
	d.say(fmt.Sprintf("An in-process server runs at %s with a temporary SQLite database and "+
		"the built-in sample inventory (simulated Azure and AWS networks). Everything below goes "+
		"through its REST API, as the CLI does.", srv.URL))
	fmt.Fprintln(w)
	vms, err := c.VMs(ctx)
	if err != nil {
		return err
	}
	printVMs(w, vms, false)
	for _, vm := range vms {
		d.names[strings.ToLower(vm.ID)] = vm.Name
	}

	for i, s := range demoScenes() {
		var vm api.VMSummary
		for _, v := range vms {
			if v.Name == s.name {
				vm = v
			}
		}
		if vm.ID == "" {
			return fmt.Errorf("check failed: the sample inventory has no VM %s", s.name)
		}
		if err := d.scenario(i+1, s, vm); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if err := d.firewallScenario(len(demoScenes()) + 1); err != nil {
		return fmt.Errorf("jump-01: %w", err)
	}
	d.heading("Done")
	d.say(fmt.Sprintf("Every check passed in %.1fs. JIT closed SSH on app-01 and bastion, a "+
		"request opened it for one address, and at the grant's end the firewall went back, rule "+
		"for rule, to its state after enabling JIT; disabling JIT restored the original, on both "+
		"clouds; on jump-01 the grant went through edge-fw as a DNAT rule for one address. On "+
		"web-01 the user's own rule kept SSH open, as it would in Defender for Cloud.",
		time.Since(began).Seconds()))
	return nil
}

func (d *demo) heading(s string) {
	fmt.Fprintf(d.w, "\n== %s ==\n\n", s)
}

func (d *demo) sub(s string) {
	fmt.Fprintf(d.w, "\n-- %s --\n\n", s)
}

func (d *demo) scenario(n int, s scene, vm api.VMSummary) error {
	ctx, w, c := d.ctx, d.w, d.c
	d.heading(fmt.Sprintf("%d. %s", n, s.title))
	d.say(s.intro)

	before, err := c.Network(ctx, vm.ID)
	if err != nil {
		return err
	}
	d.sub("Before JIT")
	printDemoView(w, before)
	if s.check {
		fmt.Fprintln(w)
		if err := d.checkPort(vm, before, 22, s.before); err != nil {
			return err
		}
	}
	if s.assess {
		if err := d.demoAssessment("Assessment before JIT", vm, s.beforeA); err != nil {
			return err
		}
	}

	policyID, enabled, err := d.enableJIT(vm, before)
	if err != nil {
		return err
	}
	if s.check {
		fmt.Fprintln(w)
		if err := d.checkPort(vm, enabled, 22, s.enabled); err != nil {
			return err
		}
	}
	if s.assess {
		if err := d.demoAssessment("Assessment after enabling JIT", vm, s.afterA); err != nil {
			return err
		}
	}
	if s.outro != "" {
		fmt.Fprintln(w)
		d.say(s.outro)
	}
	if s.grant {
		if err := d.grantCycle(s, vm, enabled); err != nil {
			return err
		}
	}

	// Disable JIT.
	if err := c.DeletePolicy(ctx, policyID); err != nil {
		return fmt.Errorf("disable JIT: %w", err)
	}
	back, err := d.waitView(vm.ID, before)
	d.sub("Disable JIT (DELETE the policy): what changed")
	added, removed := viewDiff(enabled, back)
	printChanges(w, added, removed)
	if err != nil {
		return fmt.Errorf("check failed: after disabling JIT the firewall differs from the state before enabling it: %w", err)
	}
	fmt.Fprintln(w)
	d.say(fmt.Sprintf("Identical to the state before JIT was enabled (%s compared).", countEntries(back)))
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
