package azure

import (
	"context"
	"fmt"
	"net/netip"
	"sort"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/compute/armcompute/v6"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"

	"github.com/drawbridge/drawbridge/internal/inventory"
)

// Scope is what Discover lists: a subscription, or one resource group of it.
type Scope struct {
	Subscription  string
	ResourceGroup string // empty: the whole subscription
}

// collect drains a pager.
func collect[R, T any](ctx context.Context, p *runtime.Pager[R], value func(R) []*T) ([]*T, error) {
	var out []*T
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, v := range value(page) {
			if v != nil {
				out = append(out, v)
			}
		}
	}
	return out, nil
}

// Discover lists the VMs, NICs, virtual networks (with their subnets), NSGs,
// public IP addresses and Azure Firewalls of the scope through the SDK's
// pagers and returns them as an inventory whose VMs use provider "azure".
func Discover(ctx context.Context, cred azcore.TokenCredential, opts *arm.ClientOptions, sc Scope) (inventory.Inventory, error) {
	if opts == nil {
		opts = DefaultClientOptions()
	}
	net, err := armnetwork.NewClientFactory(sc.Subscription, cred, opts)
	if err != nil {
		return inventory.Inventory{}, err
	}
	vmc, err := armcompute.NewVirtualMachinesClient(sc.Subscription, cred, opts)
	if err != nil {
		return inventory.Inventory{}, err
	}
	rg := sc.ResourceGroup
	var inv inventory.Inventory
	wrap := func(what string, err error) error {
		return fmt.Errorf("list %s in %s: %w", what, scopeName(sc), err)
	}

	var vms []*armcompute.VirtualMachine
	if rg == "" {
		vms, err = collect(ctx, vmc.NewListAllPager(nil), func(r armcompute.VirtualMachinesClientListAllResponse) []*armcompute.VirtualMachine { return r.Value })
	} else {
		vms, err = collect(ctx, vmc.NewListPager(rg, nil), func(r armcompute.VirtualMachinesClientListResponse) []*armcompute.VirtualMachine { return r.Value })
	}
	if err != nil {
		return inv, wrap("virtual machines", err)
	}
	for _, v := range vms {
		inv.VMs = append(inv.VMs, vmFromARM(v))
	}

	var pips []*armnetwork.PublicIPAddress
	pc := net.NewPublicIPAddressesClient()
	if rg == "" {
		pips, err = collect(ctx, pc.NewListAllPager(nil), func(r armnetwork.PublicIPAddressesClientListAllResponse) []*armnetwork.PublicIPAddress {
			return r.Value
		})
	} else {
		pips, err = collect(ctx, pc.NewListPager(rg, nil), func(r armnetwork.PublicIPAddressesClientListResponse) []*armnetwork.PublicIPAddress { return r.Value })
	}
	if err != nil {
		return inv, wrap("public IP addresses", err)
	}
	pipAddr := map[string]netip.Addr{}
	for _, p := range pips {
		if p.Properties != nil && p.Properties.IPAddress != nil {
			if a, err := netip.ParseAddr(*p.Properties.IPAddress); err == nil {
				pipAddr[inventory.Key(str(p.ID))] = a
			}
		}
	}

	var nics []*armnetwork.Interface
	ic := net.NewInterfacesClient()
	if rg == "" {
		nics, err = collect(ctx, ic.NewListAllPager(nil), func(r armnetwork.InterfacesClientListAllResponse) []*armnetwork.Interface { return r.Value })
	} else {
		nics, err = collect(ctx, ic.NewListPager(rg, nil), func(r armnetwork.InterfacesClientListResponse) []*armnetwork.Interface { return r.Value })
	}
	if err != nil {
		return inv, wrap("network interfaces", err)
	}
	for _, n := range nics {
		nic, err := NICFromARM(n, pipAddr)
		if err != nil {
			return inv, err
		}
		inv.NICs = append(inv.NICs, nic)
	}

	var vnets []*armnetwork.VirtualNetwork
	vc := net.NewVirtualNetworksClient()
	if rg == "" {
		vnets, err = collect(ctx, vc.NewListAllPager(nil), func(r armnetwork.VirtualNetworksClientListAllResponse) []*armnetwork.VirtualNetwork { return r.Value })
	} else {
		vnets, err = collect(ctx, vc.NewListPager(rg, nil), func(r armnetwork.VirtualNetworksClientListResponse) []*armnetwork.VirtualNetwork { return r.Value })
	}
	if err != nil {
		return inv, wrap("virtual networks", err)
	}
	for _, v := range vnets {
		vn := inventory.VirtualNetwork{ID: str(v.ID)}
		if v.Properties != nil {
			if v.Properties.AddressSpace != nil {
				for _, p := range strs(v.Properties.AddressSpace.AddressPrefixes) {
					pp, err := netip.ParsePrefix(p)
					if err != nil {
						return inv, fmt.Errorf("virtual network %s: addressSpace: %w", vn.ID, err)
					}
					vn.AddressSpace = append(vn.AddressSpace, pp)
				}
			}
			for _, s := range v.Properties.Subnets {
				if s == nil {
					continue
				}
				sn, err := SubnetFromARM(s)
				if err != nil {
					return inv, err
				}
				inv.Subnets = append(inv.Subnets, sn)
			}
		}
		inv.VirtualNetworks = append(inv.VirtualNetworks, vn)
	}

	var nsgs []*armnetwork.SecurityGroup
	sg := net.NewSecurityGroupsClient()
	if rg == "" {
		nsgs, err = collect(ctx, sg.NewListAllPager(nil), func(r armnetwork.SecurityGroupsClientListAllResponse) []*armnetwork.SecurityGroup { return r.Value })
	} else {
		nsgs, err = collect(ctx, sg.NewListPager(rg, nil), func(r armnetwork.SecurityGroupsClientListResponse) []*armnetwork.SecurityGroup { return r.Value })
	}
	if err != nil {
		return inv, wrap("network security groups", err)
	}
	for _, n := range nsgs {
		inv.NSGs = append(inv.NSGs, NSGFromARM(n))
	}

	var fws []*armnetwork.AzureFirewall
	fc := net.NewAzureFirewallsClient()
	if rg == "" {
		fws, err = collect(ctx, fc.NewListAllPager(nil), func(r armnetwork.AzureFirewallsClientListAllResponse) []*armnetwork.AzureFirewall { return r.Value })
	} else {
		fws, err = collect(ctx, fc.NewListPager(rg, nil), func(r armnetwork.AzureFirewallsClientListResponse) []*armnetwork.AzureFirewall { return r.Value })
	}
	if err != nil {
		return inv, wrap("Azure Firewalls", err)
	}
	for _, f := range fws {
		inv.Firewalls = append(inv.Firewalls, inventory.Firewall{ID: str(f.ID),
			ManagedByFirewallManager: f.Properties != nil && f.Properties.FirewallPolicy != nil})
	}
	sort.Slice(inv.VMs, func(i, j int) bool { return inventory.Key(inv.VMs[i].ID) < inventory.Key(inv.VMs[j].ID) })
	return inv, nil
}

func scopeName(sc Scope) string {
	if sc.ResourceGroup != "" {
		return "resource group " + sc.ResourceGroup + " of subscription " + sc.Subscription
	}
	return "subscription " + sc.Subscription
}

// vmFromARM converts a VM: its NICs primary first, provider "azure".
func vmFromARM(v *armcompute.VirtualMachine) inventory.VM {
	vm := inventory.VM{ID: str(v.ID), Name: str(v.Name), Cloud: inventory.Azure, Provider: inventory.ProviderAzure, Location: str(v.Location)}
	if v.Properties == nil || v.Properties.NetworkProfile == nil {
		return vm
	}
	var primary, rest []string
	for _, n := range v.Properties.NetworkProfile.NetworkInterfaces {
		if n == nil || n.ID == nil {
			continue
		}
		if n.Properties != nil && n.Properties.Primary != nil && *n.Properties.Primary {
			primary = append(primary, *n.ID)
		} else {
			rest = append(rest, *n.ID)
		}
	}
	vm.NICs = append(primary, rest...)
	return vm
}
