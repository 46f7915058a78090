package azure

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
)

var _ jit.Holder = (*Provider)(nil)

// Holding lists the VMs of vms that still have JIT rules on an NSG: it
// lists every NSG of each subscription the VMs are in (one paged read per
// subscription) and matches the VM hash JIT's rule names carry. The resync
// reconciles them, so a VM whose policy was deleted while its Apply failed
// (or the server died) does not keep a grant's allow rule.
func (p *Provider) Holding(ctx context.Context, vms []inventory.VM) ([]string, error) {
	byHash := map[string][]string{}
	subs := map[string]bool{}
	for _, vm := range vms {
		rid, err := arm.ParseResourceID(vm.ID)
		if err != nil {
			continue // not an Azure ID: nothing of it can be on an NSG
		}
		subs[rid.SubscriptionID] = true
		h := sim.VMHash(vm.ID)
		byHash[h] = append(byHash[h], vm.ID)
	}
	held := map[string]string{}
	for _, sub := range sortedSet(subs) {
		f, err := p.factory(sub)
		if err != nil {
			return nil, err
		}
		pager := f.NewSecurityGroupsClient().NewListAllPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("list network security groups of subscription %s: %w", sub, err)
			}
			for _, n := range page.Value {
				if n == nil || n.Properties == nil {
					continue
				}
				for _, r := range n.Properties.SecurityRules {
					if r == nil || r.Name == nil {
						continue
					}
					for _, id := range byHash[sim.RuleVMHash(*r.Name)] {
						held[inventory.Key(id)] = id
					}
				}
			}
		}
	}
	if err := p.holdingFirewalls(ctx, sortedSet(subs), byHash, held); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(held))
	for _, id := range held {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Prefix is the resource ID prefix the scope's discovery covers: the VMs
// of provider "azure" under it that a sync no longer finds were deleted in
// Azure (jit.SyncScope).
func (sc Scope) Prefix() string {
	p := "/subscriptions/" + sc.Subscription
	if sc.ResourceGroup != "" {
		p += "/resourceGroups/" + sc.ResourceGroup
	}
	return p
}

// holdingFirewalls adds to held the VMs with a JIT DNAT rule left on an
// Azure Firewall of the subscriptions (a change cut between its firewall
// PUT and its NSG writes).
func (p *Provider) holdingFirewalls(ctx context.Context, subs []string, byHash map[string][]string, held map[string]string) error {
	for _, sub := range subs {
		f, err := p.factory(sub)
		if err != nil {
			return err
		}
		pager := f.NewAzureFirewallsClient().NewListAllPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return fmt.Errorf("list Azure Firewalls of subscription %s: %w", sub, err)
			}
			for _, fw := range page.Value {
				if fw == nil || fw.Properties == nil {
					continue
				}
				for _, c := range fw.Properties.NatRuleCollections {
					if c == nil || c.Properties == nil || !strings.EqualFold(str(c.Name), sim.FirewallCollection) {
						continue
					}
					for _, r := range c.Properties.Rules {
						for _, id := range byHash[sim.RuleVMHash(str(r.Name))] {
							held[inventory.Key(id)] = id
							p.homes.add(id, str(fw.ID)) // the next Apply reads it, wherever the VM is now
						}
					}
				}
			}
		}
	}
	return nil
}
