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
	d := &discovery{ctx: ctx, rg: sc.ResourceGroup, net: net}
	var inv inventory.Inventory
	for _, step := range []struct {
		what string
		run  func(*inventory.Inventory) error
	}{
		{"virtual machines", func(inv *inventory.Inventory) error { return d.vms(vmc, inv) }},
		{"public IP addresses", d.publicIPs},
		{"network interfaces", d.nics},
		{"virtual networks", d.vnets},
		{"network security groups", d.nsgs},
		{"Azure Firewalls", d.firewalls},
	} {
		if err := step.run(&inv); err != nil {
			return inventory.Inventory{}, fmt.Errorf("list %s in %s: %w", step.what, scopeName(sc), err)
		}
	}
	sort.Slice(inv.VMs, func(i, j int) bool { return inventory.Key(inv.VMs[i].ID) < inventory.Key(inv.VMs[j].ID) })
	return inv, nil
}

// discovery lists one scope; each method lists the whole subscription, or
// the resource group rg when set.
type discovery struct {
	ctx    context.Context
	rg     string
	net    *armnetwork.ClientFactory
	pipIPs map[string]netip.Addr // public IP resource key -> address, for NICs
}

func (d *discovery) vms(c *armcompute.VirtualMachinesClient, inv *inventory.Inventory) error {
	var vms []*armcompute.VirtualMachine
	var err error
	if d.rg == "" {
		vms, err = collect(d.ctx, c.NewListAllPager(nil), func(r armcompute.VirtualMachinesClientListAllResponse) []*armcompute.VirtualMachine { return r.Value })
	} else {
		vms, err = collect(d.ctx, c.NewListPager(d.rg, nil), func(r armcompute.VirtualMachinesClientListResponse) []*armcompute.VirtualMachine { return r.Value })
	}
	for _, v := range vms {
		inv.VMs = append(inv.VMs, vmFromARM(v))
	}
	return err
}

func (d *discovery) publicIPs(*inventory.Inventory) error {
	c := d.net.NewPublicIPAddressesClient()
	var pips []*armnetwork.PublicIPAddress
	var err error
	if d.rg == "" {
		pips, err = collect(d.ctx, c.NewListAllPager(nil), func(r armnetwork.PublicIPAddressesClientListAllResponse) []*armnetwork.PublicIPAddress {
			return r.Value
		})
	} else {
		pips, err = collect(d.ctx, c.NewListPager(d.rg, nil), func(r armnetwork.PublicIPAddressesClientListResponse) []*armnetwork.PublicIPAddress { return r.Value })
	}
	d.pipIPs = map[string]netip.Addr{}
	for _, p := range pips {
		if p.Properties != nil && p.Properties.IPAddress != nil {
			if a, err := netip.ParseAddr(*p.Properties.IPAddress); err == nil {
				d.pipIPs[inventory.Key(str(p.ID))] = a
			}
		}
	}
	return err
}

func (d *discovery) nics(inv *inventory.Inventory) error {
	c := d.net.NewInterfacesClient()
	var nics []*armnetwork.Interface
	var err error
	if d.rg == "" {
		nics, err = collect(d.ctx, c.NewListAllPager(nil), func(r armnetwork.InterfacesClientListAllResponse) []*armnetwork.Interface { return r.Value })
	} else {
		nics, err = collect(d.ctx, c.NewListPager(d.rg, nil), func(r armnetwork.InterfacesClientListResponse) []*armnetwork.Interface { return r.Value })
	}
	if err != nil {
		return err
	}
	for _, n := range nics {
		nic, err := NICFromARM(n, d.pipIPs)
		if err != nil {
			return err
		}
		inv.NICs = append(inv.NICs, nic)
	}
	return nil
}

func (d *discovery) vnets(inv *inventory.Inventory) error {
	c := d.net.NewVirtualNetworksClient()
	var vnets []*armnetwork.VirtualNetwork
	var err error
	if d.rg == "" {
		vnets, err = collect(d.ctx, c.NewListAllPager(nil), func(r armnetwork.VirtualNetworksClientListAllResponse) []*armnetwork.VirtualNetwork { return r.Value })
	} else {
		vnets, err = collect(d.ctx, c.NewListPager(d.rg, nil), func(r armnetwork.VirtualNetworksClientListResponse) []*armnetwork.VirtualNetwork { return r.Value })
	}
	if err != nil {
		return err
	}
	for _, v := range vnets {
		vn := inventory.VirtualNetwork{ID: str(v.ID)}
		if v.Properties == nil {
			inv.VirtualNetworks = append(inv.VirtualNetworks, vn)
			continue
		}
		if v.Properties.AddressSpace != nil {
			for _, p := range strs(v.Properties.AddressSpace.AddressPrefixes) {
				pp, err := netip.ParsePrefix(p)
				if err != nil {
					return fmt.Errorf("virtual network %s: addressSpace: %w", vn.ID, err)
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
				return err
			}
			inv.Subnets = append(inv.Subnets, sn)
		}
		inv.VirtualNetworks = append(inv.VirtualNetworks, vn)
	}
	return nil
}

func (d *discovery) nsgs(inv *inventory.Inventory) error {
	c := d.net.NewSecurityGroupsClient()
	var nsgs []*armnetwork.SecurityGroup
	var err error
	if d.rg == "" {
		nsgs, err = collect(d.ctx, c.NewListAllPager(nil), func(r armnetwork.SecurityGroupsClientListAllResponse) []*armnetwork.SecurityGroup { return r.Value })
	} else {
		nsgs, err = collect(d.ctx, c.NewListPager(d.rg, nil), func(r armnetwork.SecurityGroupsClientListResponse) []*armnetwork.SecurityGroup { return r.Value })
	}
	for _, n := range nsgs {
		inv.NSGs = append(inv.NSGs, NSGFromARM(n))
	}
	return err
}

func (d *discovery) firewalls(inv *inventory.Inventory) error {
	c := d.net.NewAzureFirewallsClient()
	var fws []*armnetwork.AzureFirewall
	var err error
	if d.rg == "" {
		fws, err = collect(d.ctx, c.NewListAllPager(nil), func(r armnetwork.AzureFirewallsClientListAllResponse) []*armnetwork.AzureFirewall { return r.Value })
	} else {
		fws, err = collect(d.ctx, c.NewListPager(d.rg, nil), func(r armnetwork.AzureFirewallsClientListResponse) []*armnetwork.AzureFirewall { return r.Value })
	}
	if err != nil {
		return err
	}
	prefixes := map[string]netip.Prefix{}
	for _, sn := range inv.Subnets {
		prefixes[inventory.Key(sn.ID)] = sn.AddressPrefix
	}
	for _, f := range fws {
		fw, err := FirewallFromARM(f, d.pipIPs, netip.Prefix{})
		if err != nil {
			return err
		}
		fw.SubnetPrefix = prefixes[inventory.Key(fw.Subnet)]
		inv.Firewalls = append(inv.Firewalls, fw)
	}
	LinkFirewalls(inv)
	return nil
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
