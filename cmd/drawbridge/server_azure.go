//go:build !drawbridge_client

package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/spf13/pflag"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/provider/azure"
	"github.com/drawbridge/drawbridge/internal/server"
)

// serverAzure are the server's Azure flags: provider "azure" and periodic
// discovery.
type serverAzure struct {
	enable   bool
	arm      armFlags
	sync     []string
	interval time.Duration

	cred   azcore.TokenCredential
	opts   *arm.ClientOptions
	scopes []azure.Scope
}

func (z *serverAzure) register(f *pflag.FlagSet) {
	f.BoolVar(&z.enable, "azure", false, "enforce JIT on VMs with provider \"azure\" through Azure Resource Manager (credentials: DefaultAzureCredential)")
	f.StringArrayVar(&z.sync, "sync", nil, "discover azure:SUBSCRIPTION[/RESOURCE_GROUP] every --sync-interval and apply it as the inventory (implies --azure); repeat for several")
	durationFlag(f, &z.interval, "sync-interval", 5*time.Minute, "how often --sync discovers, and how often every guarded VM is reconciled (drift is repaired within one interval)")
	z.arm.register(f)
}

// configure adds provider "azure" to cfg when asked for.
func (z *serverAzure) configure(cfg *server.Config, getenv func(string) string) error {
	for _, s := range z.sync {
		rest, ok := strings.CutPrefix(s, "azure:")
		if !ok || rest == "" {
			return fmt.Errorf("--sync %q: want azure:SUBSCRIPTION[/RESOURCE_GROUP]", s)
		}
		sub, rg, _ := strings.Cut(rest, "/")
		z.scopes = append(z.scopes, azure.Scope{Subscription: sub, ResourceGroup: rg})
	}
	if !z.enable && len(z.scopes) == 0 {
		return nil
	}
	if z.interval <= 0 {
		return fmt.Errorf("--sync-interval: %s is not a positive duration", z.interval)
	}
	var err error
	if z.cred, z.opts, err = z.arm.setup(getenv); err != nil {
		return err
	}
	p, err := azure.New(azure.Config{Credential: z.cred, ClientOptions: z.opts})
	if err != nil {
		return err
	}
	if cfg.ExtraProviders == nil {
		cfg.ExtraProviders = jit.ProviderMap{}
	}
	cfg.ExtraProviders[inventory.ProviderAzure] = p
	if len(z.scopes) > 0 {
		cfg.ResyncInterval = z.interval
	}
	return nil
}

// run discovers every --sync scope now and then every interval, until ctx
// ends. A failed discovery is logged and retried at the next tick; it
// changes nothing.
func (z *serverAzure) run(ctx context.Context, svc *jit.Service, log *slog.Logger) {
	if len(z.scopes) == 0 {
		return
	}
	t := time.NewTicker(z.interval)
	defer t.Stop()
	for {
		for _, sc := range z.scopes {
			inv, err := azure.Discover(ctx, z.cred, z.opts, sc)
			var removed []string
			if err == nil {
				// VMs deleted in Azure leave the inventory (audited).
				removed, err = svc.SyncInventory(ctx, inv, jit.SyncScope{Provider: inventory.ProviderAzure, Prefix: sc.Prefix()})
			}
			if err != nil {
				log.Error("azure sync failed", "subscription", sc.Subscription, "resource_group", sc.ResourceGroup, "err", err)
				continue
			}
			log.Info("azure sync", "subscription", sc.Subscription, "resource_group", sc.ResourceGroup, "vms", len(inv.VMs), "nsgs", len(inv.NSGs), "removed", len(removed))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
