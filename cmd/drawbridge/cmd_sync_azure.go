//go:build !drawbridge_client

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/drawbridge/drawbridge/internal/client"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/provider/azure"
)

// subCmd returns parent's subcommand named name, creating an empty one
// with the given short help if there is none (other clouds add theirs to
// the same `inventory sync` and `cloudsim`).
func subCmd(parent *cobra.Command, name, short string) *cobra.Command {
	for _, c := range parent.Commands() {
		if c.Name() == name {
			return c
		}
	}
	c := &cobra.Command{Use: name, Short: short}
	parent.AddCommand(c)
	return c
}

// addSyncAzure adds `inventory sync azure` under root's inventory command.
func (a *app) addSyncAzure(root *cobra.Command) {
	inv := subCmd(root, "inventory", "Machines and network objects")
	sync := subCmd(inv, "sync", "Discover a cloud's machines and network and apply them as the inventory")
	var (
		scope azure.Scope
		flags armFlags
		print bool
	)
	cmd := &cobra.Command{
		Use:   "azure --subscription ID [--resource-group RG]",
		Short: "List VMs, NICs, subnets, NSGs, public IPs and firewalls through ARM and apply them",
		Long: `Discover an Azure subscription (or one resource group) through Azure Resource
Manager with the official SDK and apply what it finds as the inventory; its
VMs use provider "azure". Credentials come from DefaultAzureCredential
(environment, workload or managed identity, Azure CLI login). With --print the
inventory is printed as JSON instead of applied. VMs of provider "azure" under
the subscription (or resource group) that Azure no longer has leave the
inventory: their grants end, they leave their policy, and JIT's rules on the
NSGs that outlive them are removed (audited as inventory.remove).`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if scope.Subscription == "" {
				return errors.New("--subscription: a subscription ID is required")
			}
			cred, opts, err := flags.setup(a.getenv)
			if err != nil {
				return err
			}
			found, err := azure.Discover(cmd.Context(), cred, opts, scope)
			if err != nil {
				return err
			}
			doc, err := json.MarshalIndent(found, "", "  ")
			if err != nil {
				return err
			}
			// VMs deleted in Azure (under the scope) leave the inventory.
			sync := func(c *client.Client) (map[string]int, error) {
				return c.SyncInventory(cmd.Context(), doc, inventory.ProviderAzure, scope.Prefix())
			}
			return a.applyDiscovered(doc, print, sync, func(counts map[string]int) string {
				return fmt.Sprintf("inventory synced from Azure: %d VMs, %d network security groups, %d VMs removed (deleted in Azure)", counts["vms"], counts["networkSecurityGroups"], counts["removed"])
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&scope.Subscription, "subscription", "", "Azure subscription ID (required)")
	f.StringVar(&scope.ResourceGroup, "resource-group", "", "only this resource group")
	f.BoolVar(&print, "print", false, "print the discovered inventory as JSON instead of applying it")
	flags.register(f)
	sync.AddCommand(cmd)
}
