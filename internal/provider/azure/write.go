package azure

import (
	"context"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"
)

type armnetworkFactory = armnetwork.ClientFactory

// execute performs the plan's writes in order, each one a securityRules
// create/update or delete polled to completion. It stops at the first
// failure (after the SDK's retries): what landed stays, and the next Apply
// plans from it.
//
// The firewall PUT goes first: a DNAT rule added ahead of its NSG allow
// rule opens nothing (the deny rule still stops it), and one removed ahead
// of it closes the path at the firewall first.
func (p *Provider) execute(ctx context.Context, pl plan) error {
	for _, w := range pl.strays { // closes first: the VM left those firewalls
		if err := p.writeFirewall(ctx, w); err != nil {
			return err
		}
	}
	if pl.fw != nil {
		if err := p.writeFirewall(ctx, pl.fw); err != nil {
			return err
		}
	}
	for _, w := range pl.writes {
		f, err := p.factory(w.nsg.SubscriptionID)
		if err != nil {
			return err
		}
		c := f.NewSecurityRulesClient()
		if w.delete {
			poller, err := c.BeginDelete(ctx, w.nsg.ResourceGroupName, w.nsg.Name, w.rule.Name, nil)
			if err == nil {
				_, err = poller.PollUntilDone(ctx, p.poll())
			}
			if err != nil && !notFound(err) {
				return fmt.Errorf("delete security rule %s of NSG %s: %w", w.rule.Name, w.nsg.String(), err)
			}
			continue
		}
		poller, err := c.BeginCreateOrUpdate(ctx, w.nsg.ResourceGroupName, w.nsg.Name, w.rule.Name, ruleToARM(w.rule), nil)
		if err == nil {
			_, err = poller.PollUntilDone(ctx, p.poll())
		}
		if err != nil {
			return fmt.Errorf("write security rule %s (priority %d) of NSG %s: %w", w.rule.Name, w.rule.Priority, w.nsg.String(), err)
		}
	}
	return nil
}
