package providertest

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
)

// FirewallID is the suite's classic Azure Firewall, in front of vm-f.
const FirewallID = rg + "Microsoft.Network/azureFirewalls/conf-fw"

var (
	firewallSubnet = netip.MustParsePrefix("10.8.0.0/26") // in hub-vnet
	firewallPublic = netip.MustParseAddr("198.18.7.1")
	// firewallSNAT is an address of the AzureFirewallSubnet: DNAT'd
	// traffic reaches the VM from one of them.
	firewallSNAT = netip.MustParseAddr("10.8.0.4")
)

// hubSubnet is the firewall's AzureFirewallSubnet, in a hub virtual network
// of its own (peered, as in a hub-and-spoke network).
const hubSubnet = rg + "Microsoft.Network/virtualNetworks/hub-vnet/subnets/AzureFirewallSubnet"

// firewall is conf-fw as loaded: one public IP and a user DNAT collection
// that forwards HTTPS to vm-f and, from a corporate range, port 22 of the
// public IP to an appliance, so a JIT DNAT for port 22 must listen
// elsewhere.
func firewall() inventory.Firewall {
	return inventory.Firewall{ID: FirewallID, PublicIPs: []netip.Addr{firewallPublic}, SubnetPrefix: firewallSubnet,
		Subnet: hubSubnet,
		NatRuleCollections: []inventory.NatRuleCollection{{Name: "user-dnat", Priority: 200, Action: "Dnat", Rules: []inventory.NatRule{
			{Name: "web", SourceAddresses: []string{"*"}, DestinationAddresses: []string{firewallPublic.String()}, DestinationPorts: []string{"443"},
				Protocols: []string{"TCP"}, TranslatedAddress: "10.7.3.4", TranslatedPort: "443"},
			{Name: "ssh-to-b", SourceAddresses: []string{"203.0.113.0/24"}, DestinationAddresses: []string{firewallPublic.String()}, DestinationPorts: []string{"22"},
				Protocols: []string{"TCP"}, TranslatedAddress: "10.7.9.9", TranslatedPort: "22"},
		}}}}
}

// FirewallCloud is a Cloud that holds Azure Firewalls.
type FirewallCloud interface {
	Cloud
	// Firewall returns a firewall as the cloud holds it now.
	Firewall(t testing.TB, id string) inventory.Firewall
	// AddNatCollection adds a NAT rule collection as someone else editing
	// the firewall would. With interleaved, the edit lands between the
	// provider's next read of the firewall and its write (where the cloud
	// can arrange that; a transactional one applies it at once).
	AddNatCollection(t testing.TB, id string, c inventory.NatRuleCollection, interleaved bool)
}

func direct(vms []inventory.VM) []inventory.VM {
	return slices.DeleteFunc(slices.Clone(vms), func(vm inventory.VM) bool { return vm.Firewall != "" })
}

func behindFirewall() inventory.VM {
	for _, vm := range Inventory().VMs {
		if vm.Firewall != "" {
			return vm
		}
	}
	panic("no VM behind the firewall")
}

// throughFirewall evaluates whether src reaches port of vm through the
// firewall: a DNAT rule takes (src, public IP, some port) to the VM's
// address and port, and the VM's NSGs let the firewall's SNAT address in.
// It returns the firewall port that works, or 0.
func throughFirewall(t testing.TB, c FirewallCloud, vm inventory.VM, src netip.Addr, port int) int {
	t.Helper()
	fw := c.Firewall(t, FirewallID)
	h := paths()[vm.ID][0]
	for _, col := range fw.NatRuleCollections {
		for _, r := range col.Rules {
			if r.TranslatedAddress != h.dest.String() || r.TranslatedPortNumber() != port || !r.HasProtocol("TCP") || !sourceMatches(r.SourceAddresses, src) {
				continue
			}
			for _, ps := range r.DestinationPorts {
				for fp := range portsOf(ps) {
					if r.ListensOn(firewallPublic, fp, "TCP") && nsgAllows(t, c, h, firewallSNAT, port) {
						return fp
					}
				}
			}
		}
	}
	return 0
}

func portsOf(s string) func(func(int) bool) {
	return func(yield func(int) bool) {
		lo, hi, _ := strings.Cut(s, "-")
		a, b := atoi(lo), atoi(hi)
		if b == 0 {
			b = a
		}
		for p := a; p <= b && p > 0; p++ {
			if !yield(p) {
				return
			}
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func sourceMatches(srcs []string, a netip.Addr) bool {
	for _, s := range srcs {
		if s == "*" {
			return true
		}
		if p, err := netip.ParsePrefix(s); err == nil && p.Contains(a) {
			return true
		}
		if b, err := netip.ParseAddr(s); err == nil && a == b {
			return true
		}
	}
	return false
}

func nsgAllows(t testing.TB, c Cloud, h hop, src netip.Addr, port int) bool {
	var compiled []*netrule.CompiledNSG
	for _, id := range h.nsgs {
		cn, err := netrule.CompileNSG(c.NSG(t, id))
		if err != nil {
			t.Fatalf("compile %s: %v", id, err)
		}
		compiled = append(compiled, cn)
	}
	return netrule.EvaluateAzure(compiled, netrule.NewEnv(netip.MustParsePrefix("10.7.0.0/16")),
		netrule.Query{Destination: h.dest, Port: port, Protocol: netrule.Tcp, Source: netrule.AddressSource(src)}).Allowed
}

// firewallCase: enable → grant → expiry → disable on a VM behind a classic
// Azure Firewall. The grant adds a DNAT rule from the grantee only (on a
// free port of the public IP, since 22 is a user's) and the NSG allow from
// the firewall's subnet; someone else's collection added between the
// provider's read and write survives (ETag, 412, re-plan); expiry removes
// exactly JIT's collection and the disable returns every NSG to before.
func firewallCase(t *testing.T, h Harness, faults bool) {
	c, ok := h.Cloud.(FirewallCloud)
	if !ok {
		t.Skip("this cloud holds no Azure Firewalls")
	}
	if faults {
		h.Faults(true)
		defer h.Faults(false)
	}
	vm := behindFirewall()
	beforeNSGs, beforeFW := snapshot(t, c), c.Firewall(t, FirewallID)
	if !reflect.DeepEqual(beforeFW.NatRuleCollections, firewall().NatRuleCollections) {
		t.Fatalf("the cloud's firewall is not the fixture:\n got %+v\nwant %+v", beforeFW.NatRuleCollections, firewall().NatRuleCollections)
	}
	if throughFirewall(t, c, vm, granted, 22) != 0 {
		t.Fatal("the fixture should not let the grantee reach 22 through the firewall before a grant")
	}
	apply(t, h.Provider, vm, jit.Desired{VMID: vm.ID, Guarded: ports})
	enabled := snapshot(t, c)
	if got := c.Firewall(t, FirewallID); !reflect.DeepEqual(got.NatRuleCollections, beforeFW.NatRuleCollections) {
		t.Errorf("enable changed the firewall: %+v", got.NatRuleCollections)
	}
	// Someone adds a collection while drawbridge is between its read and
	// its write of the firewall.
	theirs := inventory.NatRuleCollection{Name: "ops-added", Priority: 300, Action: "Dnat", Rules: []inventory.NatRule{{Name: "rdp-jump",
		SourceAddresses: []string{"192.0.2.0/24"}, DestinationAddresses: []string{firewallPublic.String()}, DestinationPorts: []string{"50000"},
		Protocols: []string{"TCP"}, TranslatedAddress: "10.7.1.6", TranslatedPort: "3389"}}}
	c.AddNatCollection(t, FirewallID, theirs, true)
	d := jit.Desired{VMID: vm.ID, Guarded: ports, Grants: []jit.DesiredGrant{grant(vm, "g-fw", 22)}}
	obs := apply(t, h.Provider, vm, d)
	if !slices.Equal(obs.Enforced, []string{"g-fw"}) {
		t.Errorf("enforced %v after the grant", obs.Enforced)
	}
	// The requester is told where the firewall listens for it.
	if got, want := obs.ConnectTo, map[string]netip.AddrPort{"g-fw": netip.AddrPortFrom(firewallPublic, 50001)}; !reflect.DeepEqual(got, want) {
		t.Errorf("connect-to after the grant %v, want %v", got, want)
	}
	fw := c.Firewall(t, FirewallID)
	wantUser := append(slices.Clone(beforeFW.NatRuleCollections), theirs)
	var jitCol *inventory.NatRuleCollection
	var user []inventory.NatRuleCollection
	for i, col := range fw.NatRuleCollections {
		if col.Name == sim.FirewallCollection {
			jitCol = &fw.NatRuleCollections[i]
		} else {
			user = append(user, col)
		}
	}
	if !reflect.DeepEqual(user, wantUser) {
		t.Errorf("user collections during the grant (the concurrent edit must survive)\n got %+v\nwant %+v", user, wantUser)
	}
	if jitCol == nil || len(jitCol.Rules) != 1 {
		t.Fatalf("no single JIT DNAT rule during the grant: %+v", fw.NatRuleCollections)
	}
	r := jitCol.Rules[0]
	want := inventory.NatRule{Name: sim.DNATRuleName(vm.ID, "g-fw"), Description: r.Description, SourceAddresses: []string{granted.String()},
		DestinationAddresses: []string{firewallPublic.String()}, DestinationPorts: []string{"50001"}, Protocols: []string{"TCP"},
		TranslatedAddress: "10.7.3.4", TranslatedPort: "22"}
	if !reflect.DeepEqual(r, want) {
		// 22 is the user's (ssh-to-b) and 50000 the concurrent editor's.
		t.Errorf("JIT DNAT rule\n got %+v\nwant %+v", r, want)
	}
	if fp := throughFirewall(t, c, vm, granted, 22); fp != 50001 {
		t.Errorf("grantee reaches 22 through the firewall on port %d, want 50001", fp)
	}
	if throughFirewall(t, c, vm, stranger, 22) != 0 || throughFirewall(t, c, vm, granted, 3389) != 0 {
		t.Error("the grant opened more than 22 to the grantee through the firewall")
	}
	if nsgAllows(t, c, paths()[vm.ID][0], stranger, 22) {
		t.Error("22 open to a stranger directly during the grant")
	}
	granted1 := c.Firewall(t, FirewallID)
	apply(t, h.Provider, vm, d) // idempotent
	if got := c.Firewall(t, FirewallID); !reflect.DeepEqual(got, granted1) {
		t.Errorf("a second apply of the same grant changed the firewall:\n got %+v\nwant %+v", got, granted1)
	}

	if obs := apply(t, h.Provider, vm, jit.Desired{VMID: vm.ID, Guarded: ports}); len(obs.ConnectTo) != 0 { // expiry
		t.Errorf("connect-to %v after the grant expired", obs.ConnectTo)
	}
	if got := c.Firewall(t, FirewallID); !reflect.DeepEqual(got.NatRuleCollections, wantUser) {
		t.Errorf("firewall after expiry (exactly the user's collections)\n got %+v\nwant %+v", got.NatRuleCollections, wantUser)
	}
	if throughFirewall(t, c, vm, granted, 22) != 0 {
		t.Error("grantee still reaches 22 through the firewall after expiry")
	}
	sameNSGs(t, "after expiry", snapshot(t, c), enabled)
	apply(t, h.Provider, vm, jit.Desired{VMID: vm.ID}) // disable
	sameNSGs(t, "after disable", snapshot(t, c), beforeNSGs)
	if got := c.Firewall(t, FirewallID); !reflect.DeepEqual(got.NatRuleCollections, wantUser) {
		t.Errorf("firewall after disable\n got %+v\nwant %+v", got.NatRuleCollections, wantUser)
	}
}
