package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	awsprov "github.com/drawbridge/drawbridge/internal/provider/aws"
	"github.com/drawbridge/drawbridge/internal/store"
)

// awsRuntime is what the AWS jobs need.
type awsRuntime struct {
	client awsprov.DiscoverAPI
}

// addAWSProvider runs the "aws" provider when cfg.AWS names a region; its
// revocation records live in the server's store. It returns nil when AWS
// is not configured.
func addAWSProvider(ctx context.Context, cfg Config, st store.ObjectStore, providers jit.ProviderMap) (*awsRuntime, error) {
	if cfg.AWS == nil || cfg.AWS.Region == "" {
		return nil, nil
	}
	client, err := awsprov.NewClient(ctx, *cfg.AWS)
	if err != nil {
		return nil, fmt.Errorf("aws provider: %w", err)
	}
	p := awsprov.New(client, st)
	p.MaxRulesPerGroup = cfg.AWS.RulesPerGroup
	// Drift (a revoked rule re-added) is repaired by the reconcile, every
	// ResyncInterval at the latest, and audited by the service from what
	// Apply reports (jit.Observed.Drift). VMs it still holds state on
	// without a policy are reconciled by the resync (jit.Holder).
	providers[inventory.ProviderAWS] = p
	return &awsRuntime{client: client}, nil
}

// startAWSJobs starts the AWS inventory sync, if configured.
func startAWSJobs(ctx context.Context, wg *sync.WaitGroup, cfg Config, rt *awsRuntime, svc *jit.Service) {
	if rt == nil {
		return
	}
	startAWSSync(ctx, wg, cfg, rt.client, svc)
}

// startAWSSync discovers the AWS region every cfg.AWS.SyncInterval (first
// at start) and applies what it finds as inventory, which also reconciles
// every VM.
func startAWSSync(ctx context.Context, wg *sync.WaitGroup, cfg Config, client awsprov.DiscoverAPI, svc *jit.Service) {
	if cfg.AWS.SyncInterval <= 0 {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(cfg.AWS.SyncInterval)
		defer t.Stop()
		for {
			if err := syncAWS(ctx, client, svc); err != nil && ctx.Err() == nil {
				cfg.Logger.Warn("aws inventory sync failed", "region", cfg.AWS.Region, "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func syncAWS(ctx context.Context, client awsprov.DiscoverAPI, svc *jit.Service) error {
	d, err := awsprov.Discover(ctx, client, 0)
	if err != nil {
		return err
	}
	doc, err := d.Document()
	if err != nil {
		return err
	}
	inv, err := inventory.Parse(doc)
	if err != nil {
		return err
	}
	return svc.ApplyInventory(ctx, inv)
}
