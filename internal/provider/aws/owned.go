package aws

import (
	"context"
	"fmt"
	"sort"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Holding lists the VMs (as inventory keys) the provider may hold state
// for: those with a revocation footprint in the store, and those named by
// the drawbridge:vm tag of a security group drawbridge created. A server
// reconciles them at start and periodically, so state a crashed (or
// failed) change left behind on a VM no longer guarded (a policy deleted
// mid-change) is cleaned up: its grant groups deleted, its rules restored.
// A tag longer than EC2 allows was shortened (vmTag), and is skipped.
// It implements jit.Holder; the inventory's VMs are not needed, since the
// footprints and tags name the VMs themselves.
func (p *Provider) Holding(ctx context.Context, _ []inventory.VM) ([]string, error) {
	seen := map[string]bool{}
	err := p.objs.ObjectTx(ctx, func(o store.Objects) error {
		return o.ListObjects(ctx, KindFootprint, func(key string, _ []byte) error {
			seen[key] = true
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list JIT footprints: %w", err)
	}
	gs, err := p.describeGroups(ctx, []types.Filter{{Name: awssdk.String("tag:" + TagManagedBy), Values: []string{managedBy}}})
	if err != nil {
		return nil, err
	}
	for _, g := range gs {
		if v := g.tags[TagVM]; v != "" && len(v) < 256 {
			seen[v] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}
