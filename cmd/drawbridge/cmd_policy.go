package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/resource"
	"github.com/spf13/cobra"
)

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
				return a.printData(saved)
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
				return a.printData(p)
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
				return a.printData(ps)
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
						return a.printData(map[string]string{"policy": id, "removedVm": vm.ID})
					}
					fmt.Fprintf(a.stdout, "JIT disabled on %s (removed from policy %s)\n", vm.ID, id)
					return nil
				}
			}
			if err := c.DeletePolicy(ctx, id); err != nil {
				return err
			}
			if a.json() {
				return a.printData(map[string]string{"deletedPolicy": id})
			}
			fmt.Fprintf(a.stdout, "policy %s deleted; JIT disabled on its VMs\n", id)
			return nil
		},
	}
}
