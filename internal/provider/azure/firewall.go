package azure

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
)

// The Azure Firewall (classic rules) path. A firewall's rule collections
// are part of the firewall resource, so a change is a whole-firewall PUT:
// the provider GETs the firewall, lets the simulated provider's placement
// decide JIT's NAT rule collection on a copy, and PUTs back exactly what it
// read with only that collection replaced, with If-Match: <etag read>.
// Someone else's edit between the GET and the PUT makes ARM answer 412;
// apply then re-reads and re-plans (their edit is kept), like a priority
// conflict on an NSG.

// fwRead is a firewall as read from ARM: the SDK object (written back
// as-is but for JIT's collection) and drawbridge's model of it.
type fwRead struct {
	rid   *arm.ResourceID
	raw   armnetwork.AzureFirewall
	model inventory.Firewall
}

// fwWrite is the PUT a plan makes of a firewall.
type fwWrite struct {
	read fwRead
	jit  *inventory.NatRuleCollection // nil: remove JIT's collection
}

// readFirewall reads the VM's firewall with its public IP addresses and
// the prefix of its AzureFirewallSubnet. A firewall that is gone is nil.
func (p *Provider) readFirewall(ctx context.Context, id string) (*fwRead, error) {
	rid, f, err := p.parse(id)
	if err != nil {
		return nil, err
	}
	got, err := f.NewAzureFirewallsClient().Get(ctx, rid.ResourceGroupName, rid.Name, nil)
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read Azure Firewall %s: %w", id, err)
	}
	fr := &fwRead{rid: rid, raw: got.AzureFirewall}
	pips := map[string]netip.Addr{}
	var subnet string
	if pp := got.Properties; pp != nil {
		for _, c := range pp.IPConfigurations {
			if c == nil || c.Properties == nil {
				continue
			}
			if c.Properties.Subnet != nil && subnet == "" {
				subnet = str(c.Properties.Subnet.ID)
			}
			if c.Properties.PublicIPAddress == nil {
				continue
			}
			pid := str(c.Properties.PublicIPAddress.ID)
			a, err := p.readPublicIP(ctx, pid)
			if err != nil {
				return nil, err
			}
			if a.IsValid() {
				pips[inventory.Key(pid)] = a
			}
		}
	}
	var prefix netip.Prefix
	if subnet != "" {
		sid, f, err := p.parse(subnet)
		if err != nil {
			return nil, err
		}
		if sid.Parent == nil {
			return nil, fmt.Errorf("Azure Firewall %s: subnet ID %s has no virtual network", id, subnet)
		}
		sg, err := f.NewSubnetsClient().Get(ctx, sid.ResourceGroupName, sid.Parent.Name, sid.Name, nil)
		if err != nil && !notFound(err) {
			return nil, fmt.Errorf("read subnet %s of Azure Firewall %s: %w", subnet, id, err)
		}
		if err == nil {
			sn, err := SubnetFromARM(&sg.Subnet)
			if err != nil {
				return nil, err
			}
			prefix = sn.AddressPrefix
		}
	}
	fr.model, err = FirewallFromARM(&got.AzureFirewall, pips, prefix)
	if err != nil {
		return nil, err
	}
	fr.model.ID = id
	return fr, nil
}

func (p *Provider) readPublicIP(ctx context.Context, id string) (netip.Addr, error) {
	rid, f, err := p.parse(id)
	if err != nil {
		return netip.Addr{}, err
	}
	got, err := f.NewPublicIPAddressesClient().Get(ctx, rid.ResourceGroupName, rid.Name, nil)
	if notFound(err) {
		return netip.Addr{}, nil
	}
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read public IP address %s: %w", id, err)
	}
	if got.Properties == nil || got.Properties.IPAddress == nil {
		return netip.Addr{}, nil
	}
	return netip.ParseAddr(*got.Properties.IPAddress)
}

// firewallWrite compares JIT's collection before and after the placement
// and returns the PUT to make, or nil. It refuses a plan that changes any
// other collection (the placement never does).
func firewallWrite(read *fwRead, after inventory.Firewall) (*fwWrite, error) {
	before := read.model
	own := func(f inventory.Firewall) (*inventory.NatRuleCollection, []inventory.NatRuleCollection) {
		var jit *inventory.NatRuleCollection
		var rest []inventory.NatRuleCollection
		for i, c := range f.NatRuleCollections {
			if strings.EqualFold(c.Name, sim.FirewallCollection) {
				jit = &f.NatRuleCollections[i]
			} else {
				rest = append(rest, c)
			}
		}
		return jit, rest
	}
	bj, brest := own(before)
	aj, arest := own(after)
	if !reflect.DeepEqual(brest, arest) {
		return nil, fmt.Errorf("Azure Firewall %s: refusing to change rule collections drawbridge does not own", before.ID)
	}
	if reflect.DeepEqual(bj, aj) {
		return nil, nil
	}
	return &fwWrite{read: *read, jit: aj}, nil
}

// writeFirewall PUTs the firewall as read with JIT's collection replaced,
// conditional on the etag read, and polls the operation to completion.
func (p *Provider) writeFirewall(ctx context.Context, w *fwWrite) error {
	body := w.read.raw
	if body.Properties == nil {
		body.Properties = &armnetwork.AzureFirewallPropertiesFormat{}
	}
	props := *body.Properties
	cs := []*armnetwork.AzureFirewallNatRuleCollection{} // [] not null: as ARM lists an empty set
	for _, c := range props.NatRuleCollections {
		if c != nil && !strings.EqualFold(str(c.Name), sim.FirewallCollection) {
			cs = append(cs, c)
		}
	}
	if w.jit != nil {
		cs = append(cs, natCollectionToARM(*w.jit))
	}
	props.NatRuleCollections = cs
	body.Properties = &props
	f, err := p.factory(w.read.rid.SubscriptionID)
	if err != nil {
		return err
	}
	hctx := ctx
	if body.Etag != nil {
		// Only the PUT is conditional: the poller's reads of the operation
		// and the resource use ctx.
		hctx = policy.WithHTTPHeader(ctx, http.Header{"If-Match": []string{*body.Etag}})
	}
	poller, err := f.NewAzureFirewallsClient().BeginCreateOrUpdate(hctx, w.read.rid.ResourceGroupName, w.read.rid.Name, body, nil)
	if err == nil {
		_, err = poller.PollUntilDone(ctx, p.poll())
	}
	if err != nil {
		return fmt.Errorf("write Azure Firewall %s: %w", w.read.rid.String(), err)
	}
	return nil
}

// FirewallFromARM converts an SDK Azure Firewall: whether a firewall
// policy (Firewall Manager) controls it, its public addresses (pips maps
// public IP resource keys to addresses), the AzureFirewallSubnet prefix
// and its classic NAT rule collections.
func FirewallFromARM(fw *armnetwork.AzureFirewall, pips map[string]netip.Addr, subnetPrefix netip.Prefix) (inventory.Firewall, error) {
	out := inventory.Firewall{ID: str(fw.ID), SubnetPrefix: subnetPrefix}
	p := fw.Properties
	if p == nil {
		return out, nil
	}
	out.ManagedByFirewallManager = p.FirewallPolicy != nil && str(p.FirewallPolicy.ID) != ""
	for _, c := range p.IPConfigurations {
		if c == nil || c.Properties == nil {
			continue
		}
		if c.Properties.Subnet != nil && out.Subnet == "" {
			out.Subnet = str(c.Properties.Subnet.ID)
		}
		if c.Properties.PublicIPAddress != nil {
			if a, ok := pips[inventory.Key(str(c.Properties.PublicIPAddress.ID))]; ok {
				out.PublicIPs = append(out.PublicIPs, a)
			}
		}
	}
	for _, c := range p.NatRuleCollections {
		if c == nil {
			continue
		}
		nc := inventory.NatRuleCollection{Name: str(c.Name)}
		if cp := c.Properties; cp != nil {
			if cp.Priority != nil {
				nc.Priority = int(*cp.Priority)
			}
			if cp.Action != nil && cp.Action.Type != nil {
				nc.Action = string(*cp.Action.Type)
			}
			for _, r := range cp.Rules {
				if r == nil {
					continue
				}
				nr := inventory.NatRule{Name: str(r.Name), Description: str(r.Description),
					SourceAddresses: strs(r.SourceAddresses), SourceIPGroups: strs(r.SourceIPGroups), DestinationAddresses: strs(r.DestinationAddresses),
					DestinationPorts: strs(r.DestinationPorts), TranslatedAddress: str(r.TranslatedAddress), TranslatedPort: str(r.TranslatedPort)}
				for _, pr := range r.Protocols {
					if pr != nil {
						nr.Protocols = append(nr.Protocols, string(*pr))
					}
				}
				nc.Rules = append(nc.Rules, nr)
			}
		}
		out.NatRuleCollections = append(out.NatRuleCollections, nc)
	}
	return out, nil
}

func natCollectionToARM(c inventory.NatRuleCollection) *armnetwork.AzureFirewallNatRuleCollection {
	action := armnetwork.AzureFirewallNatRCActionTypeDnat
	if c.Action != "" {
		action = armnetwork.AzureFirewallNatRCActionType(c.Action)
	}
	out := &armnetwork.AzureFirewallNatRuleCollection{Name: to.Ptr(c.Name), Properties: &armnetwork.AzureFirewallNatRuleCollectionProperties{
		Priority: to.Ptr(int32(c.Priority)), Action: &armnetwork.AzureFirewallNatRCAction{Type: &action},
		Rules: []*armnetwork.AzureFirewallNatRule{}}}
	for _, r := range c.Rules {
		nr := &armnetwork.AzureFirewallNatRule{Name: to.Ptr(r.Name), Description: optPtr(r.Description),
			SourceAddresses: ptrs(r.SourceAddresses), SourceIPGroups: ptrs(r.SourceIPGroups), DestinationAddresses: ptrs(r.DestinationAddresses),
			DestinationPorts: ptrs(r.DestinationPorts), TranslatedAddress: optPtr(r.TranslatedAddress), TranslatedPort: optPtr(r.TranslatedPort)}
		for _, pr := range r.Protocols {
			nr.Protocols = append(nr.Protocols, to.Ptr(armnetwork.AzureFirewallNetworkRuleProtocol(pr)))
		}
		out.Properties.Rules = append(out.Properties.Rules, nr)
	}
	return out
}
