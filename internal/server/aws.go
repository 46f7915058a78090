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
	prov   *awsprov.Provider
}

// addAWSProvider runs the "aws" provider when cfg.AWS names a region; its
// revocation records live in the server's store. It returns nil when AWS
// is not configured.
func addAWSProvider(ctx context.Context, cfg Config, st store.ObjectStore, providers jit.ProviderMap, events jit.EventSink) (*awsRuntime, error) {
	if cfg.AWS == nil || cfg.AWS.Region == "" {
		return nil, nil
	}
	client, err := awsprov.NewClient(ctx, *cfg.AWS)
	if err != nil {
		return nil, fmt.Errorf("aws provider: %w", err)
	}
	p := awsprov.New(client, st)
	p.MaxRulesPerGroup = cfg.AWS.RulesPerGroup
	// Drift is repaired by the reconcile (every ResyncInterval at the
	// latest); it is logged so an operator can find who re-opened it.
	p.OnDrift = func(vmID, groupID string, rules []awsprov.Rule) {
		var evs []jit.Event
		for _, r := range rules {
			cfg.Logger.Warn("drift: a rule JIT revoked was re-added; revoked again", "vm", vmID, "group", groupID, "rule", r.String())
			evs = append(evs, driftEvent(vmID, groupID, r))
		}
		if events != nil {
			events.Publish(evs)
		}
	}
	providers[inventory.ProviderAWS] = p
	return &awsRuntime{client: client, prov: p}, nil
}

// startAWSJobs starts the AWS inventory sync (if configured) and the
// cleanup of VMs that still hold AWS state but are no longer guarded.
func startAWSJobs(ctx context.Context, wg *sync.WaitGroup, cfg Config, rt *awsRuntime, svc *jit.Service) {
	if rt == nil {
		return
	}
	startAWSSync(ctx, wg, cfg, rt.client, svc)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(cfg.ResyncInterval)
		defer t.Stop()
		for {
			reconcileHolding(ctx, cfg, rt.prov, svc)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// reconcileHolding reconciles every VM the aws provider holds state for:
// for one no longer guarded (its policy deleted while a change was cut
// short), that removes what JIT left.
func reconcileHolding(ctx context.Context, cfg Config, p *awsprov.Provider, svc *jit.Service) {
	vms, err := p.Holding(ctx)
	if err != nil {
		if ctx.Err() == nil {
			cfg.Logger.Warn("aws: listing what JIT holds failed", "err", err)
		}
		return
	}
	for _, vm := range vms {
		if err := svc.ReconcileVM(ctx, vm); err != nil && ctx.Err() == nil {
			cfg.Logger.Warn("aws: reconcile failed", "vm", vm, "err", err)
		}
	}
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

// EventDrift is the webhook event of a rule JIT had revoked that someone
// re-added, and that the reconcile revoked again.
const EventDrift jit.EventKind = "drift"

func driftEvent(vmID, groupID string, r awsprov.Rule) jit.Event {
	e := jit.Event{Kind: EventDrift, Time: time.Now().UTC(), Principal: jit.SystemPrincipal, VMID: vmID, Protocol: r.Protocol,
		Source: r.CIDRv4 + r.CIDRv6 + r.GroupID + r.PrefixListID,
		Detail: "ingress rule " + r.String() + " re-added to " + groupID + " while JIT guards it; revoked again"}
	if r.From == r.To {
		e.Port = int(r.From)
	}
	return e
}
