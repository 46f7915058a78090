package server

import (
	"context"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	awsprov "github.com/drawbridge/drawbridge/internal/provider/aws"
	"github.com/drawbridge/drawbridge/internal/store"
)

// addAWSProvider runs the "aws" provider when cfg.AWS names a region; its
// revocation records live in the server's store.
func addAWSProvider(ctx context.Context, cfg Config, st store.ObjectStore, providers jit.ProviderMap) error {
	if cfg.AWS == nil || cfg.AWS.Region == "" {
		return nil
	}
	client, err := awsprov.NewClient(ctx, *cfg.AWS)
	if err != nil {
		return fmt.Errorf("aws provider: %w", err)
	}
	p := awsprov.New(client, st)
	// Drift is repaired by the reconcile (every ResyncInterval at the
	// latest); it is logged so an operator can find who re-opened it.
	p.OnDrift = func(vmID, groupID string, rules []awsprov.Rule) {
		for _, r := range rules {
			cfg.Logger.Warn("drift: a rule JIT revoked was re-added; revoked again", "vm", vmID, "group", groupID, "rule", r.String())
		}
	}
	providers[inventory.ProviderAWS] = p
	return nil
}
