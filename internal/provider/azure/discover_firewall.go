package azure

import (
	"net/netip"
	"sort"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
)

// LinkFirewalls sets vm.Firewall on the discovered VMs an Azure Firewall
// fronts, so that grants on them take the DNAT path (or, behind a firewall
// Firewall Manager controls, the assessment reports them not applicable).
// ARM records no "fronted by" relation, so discovery infers it:
//
//  1. A firewall fronts every VM one of whose private addresses a DNAT
//     rule of its classic NAT rule collections translates to (in any
//     virtual network: hub-and-spoke networks put the firewall in a
//     peered hub).
//  2. Failing that, a firewall fronts every VM in its own virtual network
//     (the one holding its AzureFirewallSubnet) none of whose NICs has a
//     public IP address: the internet reaches such a VM only through the
//     firewall.
//
// A VM that several firewalls front by the same rule is linked to the
// first by ID. A VM whose inventory already names a firewall keeps it.
// Firewall Manager's policy rules are not read, so rule 1 applies only to
// classic firewalls.
func LinkFirewalls(inv *inventory.Inventory) {
	if len(inv.Firewalls) == 0 {
		return
	}
	fws := make([]inventory.Firewall, len(inv.Firewalls))
	copy(fws, inv.Firewalls)
	sort.Slice(fws, func(i, j int) bool { return inventory.Key(fws[i].ID) < inventory.Key(fws[j].ID) })
	nics := map[string]inventory.NIC{}
	for _, n := range inv.NICs {
		nics[inventory.Key(n.ID)] = n
	}
	byTarget := map[netip.Addr]string{} // DNAT translated address -> firewall
	for _, f := range fws {
		for _, c := range f.NatRuleCollections {
			for _, r := range c.Rules {
				if a, err := netip.ParseAddr(r.TranslatedAddress); err == nil {
					if _, taken := byTarget[a]; !taken {
						byTarget[a] = f.ID
					}
				}
			}
		}
	}
	for i := range inv.VMs {
		vm := &inv.VMs[i]
		if vm.Cloud != inventory.Azure || vm.Firewall != "" || len(vm.NICs) == 0 {
			continue
		}
		if id := linkByDNAT(vm, nics, byTarget); id != "" {
			vm.Firewall = id
			continue
		}
		vm.Firewall = linkByVNet(vm, nics, fws)
	}
}

func linkByDNAT(vm *inventory.VM, nics map[string]inventory.NIC, byTarget map[netip.Addr]string) string {
	for _, id := range vm.NICs {
		for _, a := range nics[inventory.Key(id)].PrivateIPs {
			if fw, ok := byTarget[a]; ok {
				return fw
			}
		}
	}
	return ""
}

func linkByVNet(vm *inventory.VM, nics map[string]inventory.NIC, fws []inventory.Firewall) string {
	primary, ok := nics[inventory.Key(vm.NICs[0])]
	if !ok || primary.Subnet == "" {
		return ""
	}
	for _, id := range vm.NICs {
		if len(nics[inventory.Key(id)].PublicIPs) > 0 {
			return "" // reachable directly: JIT opens the NSG path as usual
		}
	}
	vnet := vnetKey(primary.Subnet)
	for _, f := range fws {
		if f.Subnet != "" && vnetKey(f.Subnet) == vnet {
			return f.ID
		}
	}
	return ""
}

// vnetKey is the key of the virtual network a subnet ID is under.
func vnetKey(subnetID string) string {
	k := inventory.Key(subnetID)
	if i := strings.LastIndex(k, "/subnets/"); i >= 0 {
		return k[:i]
	}
	return k
}
