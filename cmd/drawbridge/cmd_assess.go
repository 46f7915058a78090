package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/assess"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

func (a *app) assessCmd() *cobra.Command {
	var (
		scope, status, policyName string
		fix, yes, views           bool
		vmArgs                    []string
	)
	cmd := &cobra.Command{
		Use:   "assess [--scope ID] [--status S] [--views] | assess --fix [--vm VM]... [--yes]",
		Short: "Which VMs need JIT: the recommendation, and the one-step fix",
		Long: `Show the recommendation "` + assess.Title + `"
(severity High): every VM is Healthy, Unhealthy (a management port is reachable
from the internet and JIT does not guard it; each port is listed with the rule
that exposes it) or Not applicable (with the reason).

Healthy follows Defender for Cloud: a VM whose JIT policy guards every exposed
management port is Healthy. JIT's deny rule stays behind rules that already
allowed a port, so such a port may still be reachable; it is shown as a
"still reachable" warning with the rule that allows it.

--fix shows the plan: per unhealthy VM, the exposed management ports with the
default policy (TCP, source *, at most PT3H), added to the VM's policy or to
the policy named --policy-name in its resource group and location. Nothing
changes unless --yes is given too.`,
		Example: `  drawbridge assess
  drawbridge assess --status unhealthy -o json
  drawbridge assess --fix            # show the plan, change nothing
  drawbridge assess --fix --yes      # apply it`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			var want assess.Status
			switch strings.ToLower(strings.ReplaceAll(status, "-", "")) {
			case "":
			case "healthy":
				want = assess.Healthy
			case "unhealthy":
				want = assess.Unhealthy
			case "notapplicable":
				want = assess.NotApplicable
			default:
				return fmt.Errorf("--status: %q is not one of healthy, unhealthy, not-applicable", status)
			}
			if yes && !fix {
				return fmt.Errorf("--yes: only applies with --fix")
			}
			if (len(vmArgs) > 0 || cmd.Flags().Changed("policy-name")) && !fix {
				return fmt.Errorf("--vm and --policy-name only apply with --fix")
			}
			if fix && (want != "" || views || scope != "") {
				return fmt.Errorf("--fix cannot be combined with --status, --views or --scope; use --vm to pick VMs")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			as, err := c.Assessment(ctx, scope)
			if err != nil {
				return err
			}
			if !fix {
				if want != "" {
					kept := as.Results[:0:0]
					for _, r := range as.Results {
						if r.Status == want {
							kept = append(kept, r)
						}
					}
					as.Results = kept
				}
				if a.json() {
					return a.printData(as)
				}
				printAssessment(a.stdout, as, views)
				return nil
			}

			// --fix: pick the VMs, show the plan, apply only with --yes.
			plan := as.Fix
			var ids []string
			if len(vmArgs) > 0 {
				kept := plan.VirtualMachines[:0:0]
				for _, arg := range vmArgs {
					vm, err := resolveVM(ctx, c, arg)
					if err != nil {
						return err
					}
					found := false
					for _, p := range plan.VirtualMachines {
						if strings.EqualFold(p.ID, vm.ID) {
							kept, found = append(kept, p), true
						}
					}
					if !found {
						return fmt.Errorf("--vm: %s is not unhealthy in the assessment: there is nothing to fix", arg)
					}
					ids = append(ids, vm.ID)
				}
				plan.VirtualMachines = kept
			}
			if !yes {
				if a.json() {
					return a.printData(plan)
				}
				printFixPlan(a.stdout, plan)
				if len(plan.VirtualMachines) > 0 {
					fmt.Fprintln(a.stdout, "\nNothing was changed. Run again with --fix --yes to apply this plan.")
				}
				return nil
			}
			if len(plan.VirtualMachines) == 0 {
				if a.json() {
					return a.printData(api.AssessmentFixResponse{Plan: plan, Policies: []api.FixedPolicy{}})
				}
				printFixPlan(a.stdout, plan)
				return nil
			}
			res, err := c.FixAssessment(ctx, api.AssessmentFixRequest{VMs: ids, PolicyName: policyName})
			if err != nil {
				return err
			}
			if a.json() {
				if err := a.printData(res); err != nil {
					return err
				}
			} else {
				printFixResult(a.stdout, res)
			}
			for _, p := range res.Policies {
				if p.ProvisioningError != "" {
					return fmt.Errorf("policy %s: %s", p.ID, p.ProvisioningError)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&scope, "scope", "", "assess only the VMs inside this resource ID (a subscription or resource group)")
	f.StringVar(&status, "status", "", "show only VMs with this status: healthy, unhealthy or not-applicable")
	f.BoolVar(&views, "views", false, "also show the portal's views: Configured (requests in the last 7 days, last access, last user), Not configured, Unsupported")
	f.BoolVar(&fix, "fix", false, "show the plan that enables JIT on the unhealthy VMs (apply it with --yes)")
	f.BoolVar(&yes, "yes", false, "with --fix: apply the plan")
	f.StringArrayVar(&vmArgs, "vm", nil, "with --fix: only this VM (name or resource ID; repeatable)")
	f.StringVar(&policyName, "policy-name", "default", "with --fix: the policy a VM without one is added to")
	return cmd
}

// ruleText names a rule as an operator finds it: the NSG or security group
// by its short name, the rule, and what it allows.
func ruleText(r netrule.RuleRef) string {
	if r.Group == "" && r.Rule == "" {
		return ""
	}
	if r.Priority != 0 {
		return fmt.Sprintf("%s/%s (priority %d, %s from %s)", lastSegment(r.Group), r.Rule, r.Priority, r.Access, r.Source)
	}
	if r.Protocol == "" && r.Ports == "" {
		return fmt.Sprintf("%s: %s", lastSegment(r.Group), r.Rule)
	}
	return fmt.Sprintf("%s/%s (%s %s from %s)", lastSegment(r.Group), r.Rule, r.Protocol, r.Ports, r.Source)
}

func vmName(id, name string) string {
	if name != "" {
		return name
	}
	return lastSegment(id)
}

func policyPorts(ps []assess.PolicyPort) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(p.Number) + "/" + string(p.Protocol)
	}
	return strings.Join(s, ",")
}

func printAssessment(w io.Writer, as api.Assessment, views bool) {
	fmt.Fprintln(w, as.Recommendation.Title)
	fmt.Fprintf(w, "Severity: %s   Healthy: %d   Unhealthy: %d   Not applicable: %d   (management ports %s)\n",
		as.Recommendation.Severity, as.Summary.Healthy, as.Summary.Unhealthy, as.Summary.NotApplicable, ints(as.ManagementPorts))
	groups := map[assess.Status][]assess.Result{}
	for _, r := range as.Results {
		groups[r.Status] = append(groups[r.Status], r)
	}
	warned := false
	if rs := groups[assess.Unhealthy]; len(rs) > 0 {
		fmt.Fprintf(w, "\nUnhealthy (%d): management ports reachable from the internet without JIT\n", len(rs))
		t := newTable(w, "VM", "CLOUD", "PORT", "PROTOCOL", "EXPOSED BY")
		for _, r := range rs {
			for _, e := range r.Exposures {
				t.row(vmName(r.ID, r.Name), string(r.Cloud), strconv.Itoa(e.Port), string(e.Protocol), ruleText(e.Rule))
			}
		}
		t.flush()
	}
	if rs := groups[assess.Healthy]; len(rs) > 0 {
		fmt.Fprintf(w, "\nHealthy (%d)\n", len(rs))
		t := newTable(w, "VM", "CLOUD", "JIT PORTS", "NOTE")
		for _, r := range rs {
			note := "no management port reachable from the internet"
			if r.HasPolicy() {
				note = "JIT guards every exposed management port"
			}
			if len(r.StillReachable) > 0 {
				var s []string
				for _, e := range r.StillReachable {
					s = append(s, strconv.Itoa(e.Port)+" via "+ruleText(e.Rule))
				}
				note = "WARNING still reachable: " + strings.Join(s, "; ")
				warned = true
			}
			t.row(vmName(r.ID, r.Name), string(r.Cloud), policyPorts(r.JITPorts), note)
		}
		t.flush()
	}
	if rs := groups[assess.NotApplicable]; len(rs) > 0 {
		fmt.Fprintf(w, "\nNot applicable (%d)\n", len(rs))
		t := newTable(w, "VM", "CLOUD", "REASON", "DETAIL")
		for _, r := range rs {
			t.row(vmName(r.ID, r.Name), string(r.Cloud), string(r.Reason), r.Detail)
		}
		t.flush()
	}
	if views {
		v := as.Views
		fmt.Fprintf(w, "\nConfigured (%d)\n", len(v.Configured))
		t := newTable(w, "VM", "JIT PORTS", "APPROVED REQUESTS (7 DAYS)", "LAST ACCESS", "LAST USER")
		for _, c := range v.Configured {
			t.row(vmName(c.ID, c.Name), policyPorts(c.JITPorts), strconv.Itoa(c.ApprovedRequests), fmtTime(c.LastAccess), c.LastUser)
		}
		t.flush()
		fmt.Fprintf(w, "\nNot configured (%d)\n", len(v.NotConfigured))
		t = newTable(w, "VM", "STATUS")
		for _, c := range v.NotConfigured {
			t.row(vmName(c.ID, c.Name), string(c.Status))
		}
		t.flush()
		fmt.Fprintf(w, "\nUnsupported (%d)\n", len(v.Unsupported))
		t = newTable(w, "VM", "REASON")
		for _, c := range v.Unsupported {
			t.row(vmName(c.ID, c.Name), string(c.Reason))
		}
		t.flush()
	}
	if warned {
		fmt.Fprintln(w, "\nNote: "+api.AssessmentNote)
	}
}

func printFixPlan(w io.Writer, plan assess.FixPlan) {
	if len(plan.VirtualMachines) == 0 {
		fmt.Fprintln(w, "Fix plan: no unhealthy VM; nothing to do.")
		return
	}
	fmt.Fprintf(w, "Fix plan: enable JIT on %d VM(s) with the default policy (the exposed management ports, protocol %s, source %s, max duration %s)\n",
		len(plan.VirtualMachines), assess.FixProtocol, assess.FixSource, assess.FixMaxDurationISO)
	t := newTable(w, "VM", "PORTS", "PROTOCOL", "SOURCE", "MAX DURATION", "POLICY")
	for _, vm := range plan.VirtualMachines {
		var ports []int
		for _, p := range vm.Ports {
			ports = append(ports, p.Number)
		}
		pol := "new entry"
		if vm.ExtendsPolicy {
			pol = "extends its policy"
		}
		t.row(vmName(vm.ID, vm.Name), ints(ports), assess.FixProtocol, assess.FixSource, assess.FixMaxDurationISO, pol)
	}
	t.flush()
}

func printFixResult(w io.Writer, res api.AssessmentFixResponse) {
	printFixPlan(w, res.Plan)
	fmt.Fprintf(w, "\nApplied: %d policy(ies)\n", len(res.Policies))
	t := newTable(w, "POLICY", "ACTION", "VMS", "STATE")
	for _, p := range res.Policies {
		action := "extended"
		switch {
		case p.Created:
			action = "created"
		case p.Unchanged:
			action = "unchanged (applied again)"
		case len(p.Widened) > 0:
			action = "extended (protocol widened)"
		}
		names := make([]string, len(p.VMs))
		for i, id := range p.VMs {
			names[i] = lastSegment(id)
		}
		state := p.ProvisioningState
		if p.ProvisioningError != "" {
			state += " (" + p.ProvisioningError + ")"
		}
		t.row(p.ID, action, strings.Join(names, ","), state)
	}
	t.flush()
	for _, p := range res.Policies {
		for _, note := range p.Widened {
			fmt.Fprintln(w, "  "+safeText(note))
		}
	}
	fmt.Fprintf(w, "\nAfter the fix: Healthy: %d   Unhealthy: %d   Not applicable: %d\n", res.Summary.Healthy, res.Summary.Unhealthy, res.Summary.NotApplicable)
	warned := false
	for _, r := range res.Results {
		line := fmt.Sprintf("  %s: %s", vmName(r.ID, r.Name), r.Status)
		for _, e := range r.StillReachable {
			line += fmt.Sprintf("; WARNING port %d still reachable via %s", e.Port, ruleText(e.Rule))
			warned = true
		}
		fmt.Fprintln(w, line)
	}
	if warned {
		fmt.Fprintln(w, "\nNote: "+api.AssessmentNote)
	}
}
