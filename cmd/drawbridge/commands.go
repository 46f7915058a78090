package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// ---- VM names ----

// resolveVM finds a VM by resource ID or, when unique, by short name (its
// name or the last segment of its ID, e.g. an AWS instance ID).
func resolveVM(ctx context.Context, c *client.Client, arg string) (api.VMSummary, error) {
	if arg == "" {
		return api.VMSummary{}, errors.New("vm: a VM name or resource ID is required")
	}
	vms, err := c.VMs(ctx)
	if err != nil {
		// A caller whose roles stop below "/" (a requester scoped to a
		// resource group) cannot list every VM; a full ID needs no lookup.
		if strings.HasPrefix(arg, "/") && client.StatusCode(err) == http.StatusForbidden {
			return api.VMSummary{ID: arg, Name: lastSegment(arg)}, nil
		}
		return api.VMSummary{}, err
	}
	var found []api.VMSummary
	for _, vm := range vms {
		if strings.EqualFold(vm.ID, arg) {
			return vm, nil
		}
		if !strings.HasPrefix(arg, "/") && (strings.EqualFold(vm.Name, arg) || strings.EqualFold(lastSegment(vm.ID), arg)) {
			found = append(found, vm)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return api.VMSummary{}, fmt.Errorf("vm: no virtual machine %q (see drawbridge vm list)", arg)
	}
	ids := make([]string, len(found))
	for i, vm := range found {
		ids[i] = vm.ID
	}
	return api.VMSummary{}, fmt.Errorf("vm: name %q is ambiguous, use one of the IDs: %s", arg, strings.Join(ids, ", "))
}

func isPolicyID(arg string) bool {
	return strings.HasPrefix(strings.ToLower(arg), "/subscriptions/") && strings.Contains(strings.ToLower(arg), "/jitnetworkaccesspolicies/")
}

// policyIDFor returns a policy ID given as such, or the ID of the policy
// guarding the VM named by arg.
func policyIDFor(ctx context.Context, c *client.Client, arg string) (string, api.VMSummary, error) {
	if isPolicyID(arg) {
		return arg, api.VMSummary{}, nil
	}
	vm, err := resolveVM(ctx, c, arg)
	if err != nil {
		return "", vm, err
	}
	if vm.Policy == "" {
		return "", vm, fmt.Errorf("vm: virtual machine %s has no JIT policy", vm.ID)
	}
	return vm.Policy, vm, nil
}

// ---- policy ----

func (a *app) policyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Enable, get and disable JIT policies"}
	cmd.AddCommand(a.policySetCmd(), a.policyGetCmd(), a.policyListCmd(), a.policyDeleteCmd())
	return cmd
}

func (a *app) policySetCmd() *cobra.Command {
	var (
		ports                  []int
		protocol, maxDur, name string
		location, file, id     string
		sources, oldSources    []string
		concurrent             bool
	)
	cmd := &cobra.Command{
		Use:   "set VM --port N [--port N] | set -f FILE [--id POLICY_ID]",
		Short: "Enable JIT on a VM's ports (create or update its policy)",
		Long: `Enable JIT on a VM: its entry in the policy (default name "default", in the
VM's subscription, resource group and location) is created or replaced; other
VMs of the same policy are kept. With -f, an Azure jitNetworkAccessPolicies
body is PUT as it is, to --id or to the "id" in the file.`,
		Example: `  drawbridge policy set web-01 --port 22 --port 3389 --allowed-source 198.18.0.0/15 --max-duration 3h
  drawbridge policy set -f policy.json --id /subscriptions/S/resourceGroups/RG/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if a.warnOldFlag(cmd, "source", "--allowed-source") {
				sources = append(sources, oldSources...)
			}
			var saved api.PolicyResource
			if file != "" {
				if len(args) > 0 {
					return errors.New("give either a VM or -f FILE, not both")
				}
				saved, err = putPolicyFile(ctx, c, file, id)
			} else {
				if len(args) == 0 {
					return errors.New("vm: a VM name or resource ID is required (or -f FILE)")
				}
				if len(ports) == 0 {
					return errors.New("--port: at least one port is required")
				}
				saved, err = setPolicyForVM(ctx, c, args[0], name, location, ports, protocol, sources, maxDur, concurrent)
			}
			if err != nil {
				return err
			}
			if a.json() {
				return printJSON(a.stdout, saved)
			}
			printPolicy(a.stdout, saved, a.wide())
			return nil
		},
	}
	f := cmd.Flags()
	f.IntSliceVar(&ports, "port", nil, "port to guard (repeatable)")
	f.StringVar(&protocol, "protocol", "TCP", "protocol of the ports: TCP, UDP or *")
	f.StringSliceVar(&sources, "allowed-source", nil, "source prefix requests may come from (repeatable; default * = any)")
	f.StringSliceVar(&oldSources, "source", nil, "deprecated: use --allowed-source")
	oldFlag(cmd, "source")
	f.StringVar(&maxDur, "max-duration", "PT3H", "maximum request duration, ISO 8601 (PT3H) or Go syntax (3h)")
	f.StringVar(&name, "name", "default", "policy name")
	f.StringVar(&location, "location", "", "policy location (default: the VM's)")
	f.StringVarP(&file, "file", "f", "", "Azure policy body (JSON) to PUT as it is")
	f.StringVar(&id, "id", "", "policy resource ID for -f (default: the file's id)")
	f.BoolVar(&concurrent, "concurrent-sources", false, "let grants from different sources hold a port at once (default: a newer request ends the older grant, as Azure does)")
	return cmd
}

func putPolicyFile(ctx context.Context, c *client.Client, file, id string) (api.PolicyResource, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return api.PolicyResource{}, fmt.Errorf("-f: %v", err)
	}
	if id == "" {
		var head struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(data, &head); err != nil {
			return api.PolicyResource{}, fmt.Errorf("-f %s: not a JSON policy body: %v", file, err)
		}
		if head.ID == "" {
			return api.PolicyResource{}, fmt.Errorf("--id: the policy ID is required (the file %s has no id)", file)
		}
		id = head.ID
	}
	if !isPolicyID(id) {
		return api.PolicyResource{}, fmt.Errorf("--id: %q is not a jitNetworkAccessPolicies resource ID", id)
	}
	return c.PutPolicyRaw(ctx, id, data)
}

// defaultHostLocation is the policy location `policy set` uses for a host
// (cloud: host) whose inventory entry names no location: on-premises hosts
// have no cloud region, and the policy's ID needs one.
const defaultHostLocation = "local"

func setPolicyForVM(ctx context.Context, c *client.Client, vmArg, name, location string, ports []int, protocol string, sources []string, maxDur string, concurrent bool) (api.PolicyResource, error) {
	vm, err := resolveVM(ctx, c, vmArg)
	if err != nil {
		return api.PolicyResource{}, err
	}
	rid, err := resource.Parse(vm.ID)
	if err != nil {
		return api.PolicyResource{}, fmt.Errorf("vm: %v", err)
	}
	if rid.ResourceGroup() == "" {
		return api.PolicyResource{}, fmt.Errorf("vm: %s is not inside a resource group", vm.ID)
	}
	if location == "" {
		location = vm.Location
	}
	if location == "" && vm.Cloud == "host" {
		location = defaultHostLocation
	}
	if location == "" {
		return api.PolicyResource{}, fmt.Errorf("--location: virtual machine %s has no location; give --location", vm.ID)
	}
	entry := jit.VMPolicy{ID: vm.ID}
	for _, n := range ports {
		pp := jit.PortPolicy{Number: n, Protocol: netrule.Protocol(protocol), MaxRequestAccessDuration: maxDur, ConcurrentSources: concurrent}
		switch len(sources) {
		case 0:
			pp.AllowedSourceAddressPrefix = "*"
		case 1:
			pp.AllowedSourceAddressPrefix = sources[0]
		default:
			pp.AllowedSourceAddressPrefixes = sources
		}
		entry.Ports = append(entry.Ports, pp)
	}
	id := jit.PolicyID(rid.Subscription(), rid.ResourceGroup(), location, name)
	// PUT replaces the whole policy: keep the other VMs it already guards.
	vms := []jit.VMPolicy{entry}
	existing, err := c.GetPolicy(ctx, id)
	switch {
	case err == nil:
		vms = vms[:0]
		replaced := false
		for _, v := range existing.Properties.VirtualMachines {
			if strings.EqualFold(v.ID, vm.ID) {
				v, replaced = entry, true
			}
			vms = append(vms, v)
		}
		if !replaced {
			vms = append(vms, entry)
		}
	case client.StatusCode(err) == http.StatusNotFound:
	default:
		return api.PolicyResource{}, err
	}
	body := api.PolicyResource{Kind: "Basic", Location: location, Properties: api.PolicyProperties{VirtualMachines: vms}}
	return c.PutPolicy(ctx, id, body)
}

func (a *app) policyGetCmd() *cobra.Command {
	return getVerb(&cobra.Command{
		Use:   "get POLICY_ID|VM",
		Short: "Show a policy (by its ID or a VM it guards)",
		Args:  exactArgs(1, "POLICY_ID|VM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			id, _, err := policyIDFor(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			p, err := c.GetPolicy(cmd.Context(), id)
			if err != nil {
				return err
			}
			if a.json() {
				return printJSON(a.stdout, p)
			}
			printPolicy(a.stdout, p, a.wide())
			return nil
		},
	})
}

func (a *app) policyListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List every policy",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ps, err := c.ListPolicies(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return printJSON(a.stdout, ps)
			}
			printPolicies(a.stdout, ps, a.wide())
			return nil
		},
	}
}

func (a *app) policyDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete POLICY_ID|VM",
		Short: "Disable JIT: delete a policy, or remove one VM from its policy",
		Args:  exactArgs(1, "POLICY_ID|VM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			id, vm, err := policyIDFor(ctx, c, args[0])
			if err != nil {
				return err
			}
			if vm.ID != "" {
				// A VM: drop its entry; delete the policy if nothing is left.
				p, err := c.GetPolicy(ctx, id)
				if err != nil {
					return err
				}
				var rest []jit.VMPolicy
				for _, v := range p.Properties.VirtualMachines {
					if !strings.EqualFold(v.ID, vm.ID) {
						rest = append(rest, v)
					}
				}
				if len(rest) > 0 {
					body := api.PolicyResource{Kind: p.Kind, Location: p.Location, Properties: api.PolicyProperties{VirtualMachines: rest}}
					if _, err := c.PutPolicy(ctx, id, body); err != nil {
						return err
					}
					if a.json() {
						return printJSON(a.stdout, map[string]string{"policy": id, "removedVm": vm.ID})
					}
					fmt.Fprintf(a.stdout, "JIT disabled on %s (removed from policy %s)\n", vm.ID, id)
					return nil
				}
			}
			if err := c.DeletePolicy(ctx, id); err != nil {
				return err
			}
			if a.json() {
				return printJSON(a.stdout, map[string]string{"deletedPolicy": id})
			}
			fmt.Fprintf(a.stdout, "policy %s deleted; JIT disabled on its VMs\n", id)
			return nil
		},
	}
}

// ---- request, grants, revoke ----

func (a *app) requestCmd() *cobra.Command {
	var (
		ports                           []int
		duration, source, justification string
		wait                            bool
	)
	cmd := &cobra.Command{
		Use:     "request VM --port N [--port N] --duration D [--source ADDR] [--justification TEXT]",
		Short:   "Request access to a VM's ports",
		Example: "  drawbridge request web-01 --port 22 --duration 1h --source 198.18.0.7 --justification 'patching'",
		Args:    exactArgs(1, "VM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if len(ports) == 0 {
				return errors.New("--port: at least one port is required")
			}
			if duration == "" {
				return errors.New("--duration: required (e.g. 1h, 90s or PT1H)")
			}
			ctx := cmd.Context()
			r, vmID, err := requestVM(ctx, c, args[0], api.SimpleRequest{Ports: ports, Duration: duration, Source: source, Justification: justification})
			if err != nil {
				return err
			}
			if wait {
				return a.printWaited(ctx, c, r.ID, vmID)
			}
			if a.json() {
				return printJSON(a.stdout, r)
			}
			fmt.Fprintf(a.stdout, "request %s\n", safeText(r.ID))
			printRequest(a.stdout, r)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&wait, "wait", false, "block until the request is open, denied or lapsed (exit 8 if denied or lapsed)")
	f.IntSliceVar(&ports, "port", nil, "port to open (repeatable)")
	f.StringVar(&duration, "duration", "", "how long: 1h, 90s, PT1H")
	f.StringVar(&source, "source", "", "source address or prefix (default: your address as the server sees it)")
	f.StringVar(&justification, "justification", "", "why you need access")
	return cmd
}

func (a *app) grantsCmd() *cobra.Command {
	var (
		vmArg  string
		active bool
	)
	cmd := &cobra.Command{
		Use:   "grants [--vm VM] [--active]",
		Short: "List grants",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			vmID := ""
			if vmArg != "" {
				vm, err := resolveVM(ctx, c, vmArg)
				if err != nil {
					return err
				}
				vmID = vm.ID
			}
			gs, err := c.GrantViews(ctx, vmID, active)
			if err != nil {
				return err
			}
			sortGrantViews(gs)
			if a.json() {
				return printJSON(a.stdout, gs)
			}
			printGrantsAt(a.stdout, gs, a.now(), a.wide())
			return nil
		},
	}
	cmd.Flags().StringVar(&vmArg, "vm", "", "only this VM's grants")
	cmd.Flags().BoolVar(&active, "active", false, "only grants in force (status Initiated)")
	return cmd
}

// sortGrants orders grants newest first, then by VM and port, so that the
// output is stable.
func sortGrants(gs []jit.Grant) {
	sort.SliceStable(gs, func(i, j int) bool { return grantLess(gs[i], gs[j]) })
}

func sortGrantViews(gs []api.GrantView) {
	sort.SliceStable(gs, func(i, j int) bool { return grantLess(gs[i].Grant, gs[j].Grant) })
}

func grantLess(a, b jit.Grant) bool {
	{
		if !a.StartTime.Equal(b.StartTime) {
			return a.StartTime.After(b.StartTime)
		}
		if a.VMID != b.VMID {
			return a.VMID < b.VMID
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.ID < b.ID
	}
}

func (a *app) revokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke GRANT_ID",
		Short: "End a grant now",
		Args:  exactArgs(1, "GRANT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			g, err := c.Revoke(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return printJSON(a.stdout, g)
			}
			printGrantsAt(a.stdout, []api.GrantView{{Grant: g}}, a.now(), a.wide())
			return nil
		},
	}
}

// ---- vm, network, inventory ----

func (a *app) vmCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "vm", Short: "Virtual machines the server knows"}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List VMs with their JIT ports and active grants",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			vms, err := c.VMs(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return printJSON(a.stdout, vms)
			}
			printVMs(a.stdout, vms, a.wide())
			return nil
		},
	})
	return cmd
}

func (a *app) networkCmd() *cobra.Command {
	var inbound bool
	get := getVerb(&cobra.Command{
		Use:   "get VM",
		Short: "Show the firewall in front of a VM, rules in evaluation order",
		Long: `Show the NSGs (Azure) or security groups (AWS) in front of a VM, rules in
evaluation order. The text depends only on the firewall's state, so two
outputs can be compared with diff.`,
		Args: exactArgs(1, "VM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			vm, err := resolveVM(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			v, err := c.Network(cmd.Context(), vm.ID)
			if err != nil {
				return err
			}
			if a.json() {
				return printJSON(a.stdout, v)
			}
			printView(a.stdout, v, inbound)
			return nil
		},
	})
	get.Flags().BoolVar(&inbound, "inbound", false, "only inbound rules")
	cmd := &cobra.Command{Use: "network", Short: "Firewall state in front of VMs"}
	cmd.AddCommand(get)
	return cmd
}

func (a *app) inventoryCmd() *cobra.Command {
	var files []string
	apply := &cobra.Command{
		Use:   "apply -f FILE [-f FILE...]",
		Short: "Load an inventory document (YAML or JSON)",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if len(files) == 0 {
				return errors.New("-f: an inventory file is required")
			}
			data, err := readInventoryFiles(files)
			if err != nil {
				return err
			}
			counts, err := c.ApplyInventory(cmd.Context(), data)
			if err != nil {
				return err
			}
			if a.json() {
				return printJSON(a.stdout, counts)
			}
			fmt.Fprintf(a.stdout, "inventory applied: %d VMs, %d network security groups, %d security groups\n",
				counts["vms"], counts["networkSecurityGroups"], counts["securityGroups"])
			return nil
		},
	}
	apply.Flags().StringArrayVarP(&files, "file", "f", nil, "inventory document, YAML or JSON, or the output of aws ec2 describe-…; repeat to apply several as one")
	cmd := &cobra.Command{Use: "inventory", Short: "Machines and network objects"}
	cmd.AddCommand(apply)
	return cmd
}

// exactArgs is cobra.ExactArgs with a message naming what is expected.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		if n == 0 {
			return usageError(fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), strings.Join(args, " ")))
		}
		return usageError(fmt.Errorf("%s needs %s (usage: %s)", cmd.CommandPath(), what, cmd.UseLine()))
	}
}
