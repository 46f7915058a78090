package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
)

// VM names, and the vm, network and inventory commands. Policies are in
// cmd_policy.go; request, grants and revoke in cmd_grants.go.

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
				return a.printData(vms)
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
				return a.printData(v)
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
				return a.printData(counts)
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
