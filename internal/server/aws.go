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
	providers[inventory.ProviderAWS] = awsprov.New(client, st)
	return nil
}
