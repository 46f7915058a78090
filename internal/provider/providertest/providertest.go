// Package providertest owns the conformance suite every NSG-based provider
// runs: the same inventory, the same enable → grant → expiry → disable
// sequence, and the same checks, whether the provider is the in-process
// simulation or the Azure provider talking to a wire simulator.
package providertest

import (
	"context"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
)

// Cloud is the firewall state a provider changes, as the suite sees it.
type Cloud interface {
	// NSG returns an NSG as the cloud holds it now.
	NSG(t testing.TB, id string) netrule.NSG
	// DeleteRule removes a rule behind the provider's back (drift).
	DeleteRule(t testing.TB, nsgID, name string)
}

// Harness is one provider under test over the suite's inventory.
type Harness struct {
	Provider jit.Provider
	Cloud    Cloud
	// Faults, if set, turns fault injection on (true) or off (false).
	Faults func(on bool)
}

const (
	sub = "00000000-0000-0000-0000-00000000c0f0"
	rg  = "/subscriptions/" + sub + "/resourceGroups/conf-rg/providers/"
)

func nsgID(n string) string { return rg + "Microsoft.Network/networkSecurityGroups/" + n }
func nicID(n string) string { return rg + "Microsoft.Network/networkInterfaces/" + n }
func subnetID(n string) string {
	return rg + "Microsoft.Network/virtualNetworks/conf-vnet/subnets/" + n
}

// Inventory is the suite's network: two VMs behind a shared subnet NSG
// with user rules (one covering SSH from a corporate range), each with its
// own NIC NSG, one of which has a user rule for RDP; a third VM with two
// NICs. Providers load it into their cloud before the suite runs.
func Inventory() inventory.Inventory {
	rule := func(name string, prio int, access netrule.Access, src, port string) netrule.SecurityRule {
		return netrule.SecurityRule{Name: name, Priority: prio, Direction: netrule.Inbound, Access: access, Protocol: netrule.Tcp,
			SourceAddressPrefix: src, SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: port}
	}
	vm := func(name string, nics ...string) inventory.VM {
		return inventory.VM{ID: rg + "Microsoft.Compute/virtualMachines/" + name, Name: name, Cloud: inventory.Azure,
			Provider: inventory.ProviderSim, Location: "westeurope", NICs: nics}
	}
	ip := netip.MustParseAddr
	vmF := vm("vm-f", nicID("f-nic"))
	vmF.Firewall = FirewallID
	return inventory.Inventory{
		VMs: []inventory.VM{vm("vm-a", nicID("a-nic")), vm("vm-b", nicID("b-nic")), vm("vm-c", nicID("c-nic0"), nicID("c-nic1")), vmF},
		NICs: []inventory.NIC{
			{ID: nicID("a-nic"), Subnet: subnetID("app"), NSG: nsgID("a-nsg"), PrivateIPs: []netip.Addr{ip("10.7.1.4")}},
			{ID: nicID("b-nic"), Subnet: subnetID("app"), NSG: nsgID("b-nsg"), PrivateIPs: []netip.Addr{ip("10.7.1.5")}},
			{ID: nicID("c-nic0"), Subnet: subnetID("app"), PrivateIPs: []netip.Addr{ip("10.7.1.6")}},
			{ID: nicID("c-nic1"), Subnet: subnetID("data"), NSG: nsgID("c1-nsg"), PrivateIPs: []netip.Addr{ip("10.7.2.6")}},
			{ID: nicID("f-nic"), Subnet: subnetID("behind"), NSG: nsgID("f-nsg"), PrivateIPs: []netip.Addr{ip("10.7.3.4")}},
		},
		VirtualNetworks: []inventory.VirtualNetwork{{ID: rg + "Microsoft.Network/virtualNetworks/conf-vnet", AddressSpace: []netip.Prefix{netip.MustParsePrefix("10.7.0.0/16")}},
			{ID: rg + "Microsoft.Network/virtualNetworks/hub-vnet", AddressSpace: []netip.Prefix{netip.MustParsePrefix("10.8.0.0/16")}}},
		Subnets: []inventory.Subnet{
			{ID: subnetID("app"), AddressPrefix: netip.MustParsePrefix("10.7.1.0/24"), NSG: nsgID("app-nsg")},
			{ID: subnetID("data"), AddressPrefix: netip.MustParsePrefix("10.7.2.0/24")},
			{ID: subnetID("behind"), AddressPrefix: netip.MustParsePrefix("10.7.3.0/24")},
			{ID: hubSubnet, AddressPrefix: firewallSubnet},
		},
		NSGs: []netrule.NSG{
			{ID: nsgID("app-nsg"), Name: "app-nsg", Location: "westeurope", SecurityRules: []netrule.SecurityRule{
				rule("AllowSSHFromCorp", 200, netrule.Allow, "203.0.113.0/24", "22"),
				rule("AllowHTTPS", 300, netrule.Allow, "Internet", "443"),
				rule("DenyTelnet", 310, netrule.Deny, "*", "23"),
				rule("AllowWeb", 400, netrule.Allow, "Internet", "80-90"),
			}},
			{ID: nsgID("a-nsg"), Name: "a-nsg", Location: "westeurope", SecurityRules: []netrule.SecurityRule{
				rule("AllowHTTPSFromInternet", 1000, netrule.Allow, "Internet", "443"),
			}},
			{ID: nsgID("b-nsg"), Name: "b-nsg", Location: "westeurope", SecurityRules: []netrule.SecurityRule{
				rule("AllowRDPFromBastion", 150, netrule.Allow, "10.7.9.0/24", "3389"),
				rule("AllowWebFromInternet", 1000, netrule.Allow, "Internet", "80"),
			}},
			{ID: nsgID("c1-nsg"), Name: "c1-nsg", Location: "westeurope", SecurityRules: []netrule.SecurityRule{
				rule("AllowSSHFromVnet", 500, netrule.Allow, "VirtualNetwork", "22"),
			}},
			{ID: nsgID("f-nsg"), Name: "f-nsg", Location: "westeurope", SecurityRules: []netrule.SecurityRule{
				rule("AllowHTTPSFromFirewall", 300, netrule.Allow, firewallSubnet.String(), "443"),
			}},
		},
		Firewalls: []inventory.Firewall{firewall()},
	}
}

// allNSGs lists the suite's NSG IDs.
func allNSGs() []string {
	var out []string
	for _, n := range Inventory().NSGs {
		out = append(out, n.ID)
	}
	return out
}

var (
	stranger = netip.MustParseAddr("198.51.100.99")
	granted  = netip.MustParseAddr("198.51.100.7")
	ports    = []jit.GuardedPort{{Port: 22, Protocol: netrule.Tcp}, {Port: 3389, Protocol: netrule.Tcp}}
)

// paths returns, per VM, its private addresses and the NSGs on each NIC's
// path (subnet first), as the suite's inventory defines them.
type hop struct {
	dest netip.Addr
	nsgs []string
}

func paths() map[string][]hop {
	inv := Inventory()
	subNSG := map[string]string{}
	for _, s := range inv.Subnets {
		subNSG[s.ID] = s.NSG
	}
	nics := map[string]inventory.NIC{}
	for _, n := range inv.NICs {
		nics[n.ID] = n
	}
	out := map[string][]hop{}
	for _, vm := range inv.VMs {
		for _, id := range vm.NICs {
			n := nics[id]
			var path []string
			for _, x := range []string{subNSG[n.Subnet], n.NSG} {
				if x != "" {
					path = append(path, x)
				}
			}
			out[vm.ID] = append(out[vm.ID], hop{dest: n.PrivateIPs[0], nsgs: path})
		}
	}
	return out
}

// allowed evaluates, on the cloud's NSGs now, whether src reaches port on
// every address of the VM.
func allowed(t testing.TB, c Cloud, vm inventory.VM, src netip.Addr, port int) bool {
	t.Helper()
	for _, h := range paths()[vm.ID] {
		var compiled []*netrule.CompiledNSG
		for _, id := range h.nsgs {
			cn, err := netrule.CompileNSG(c.NSG(t, id))
			if err != nil {
				t.Fatalf("compile %s: %v", id, err)
			}
			compiled = append(compiled, cn)
		}
		v := netrule.EvaluateAzure(compiled, netrule.NewEnv(netip.MustParsePrefix("10.7.0.0/16")),
			netrule.Query{Destination: h.dest, Port: port, Protocol: netrule.Tcp, Source: netrule.AddressSource(src)})
		if !v.Allowed {
			return false
		}
	}
	return true
}

func snapshot(t testing.TB, c Cloud) map[string]netrule.NSG {
	out := map[string]netrule.NSG{}
	for _, id := range allNSGs() {
		n := c.NSG(t, id)
		n.ID = strings.ToLower(n.ID)
		out[n.ID] = n
	}
	return out
}

func sameNSGs(t testing.TB, what string, got, want map[string]netrule.NSG) {
	t.Helper()
	for id, w := range want {
		g := got[id]
		if !reflect.DeepEqual(g.SecurityRules, w.SecurityRules) {
			t.Errorf("%s: NSG %s rules\n got %+v\nwant %+v", what, id, g.SecurityRules, w.SecurityRules)
		}
	}
}

func apply(t testing.TB, p jit.Provider, vm inventory.VM, d jit.Desired) jit.Observed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Check(ctx, vm, d); err != nil {
		t.Fatalf("Check(%s): %v", vm.Name, err)
	}
	obs, err := p.Apply(ctx, vm, d)
	if err != nil {
		t.Fatalf("Apply(%s): %v", vm.Name, err)
	}
	return obs
}

func grant(vm inventory.VM, id string, port int) jit.DesiredGrant {
	src, err := jit.ParseSource(granted.String())
	if err != nil {
		panic(err)
	}
	return jit.DesiredGrant{GrantID: id, Port: port, Protocol: netrule.Tcp, Source: src, End: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// Run runs the suite. newHarness must return a provider over a fresh cloud
// holding Inventory().
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	t.Run("Lifecycle", func(t *testing.T) { lifecycle(t, newHarness(t), false) })
	t.Run("LifecycleUnderFaults", func(t *testing.T) {
		h := newHarness(t)
		if h.Faults == nil {
			t.Skip("this provider has no injectable faults (it changes its state in one store transaction)")
		}
		lifecycle(t, h, true)
	})
	t.Run("DriftReasserted", func(t *testing.T) { drift(t, newHarness(t)) })
	t.Run("Firewall", func(t *testing.T) { firewallCase(t, newHarness(t), false) })
	t.Run("FirewallUnlinked", func(t *testing.T) { firewallUnlinked(t, newHarness(t)) })
	t.Run("FirewallUnderFaults", func(t *testing.T) {
		h := newHarness(t)
		if h.Faults == nil {
			t.Skip("this provider has no injectable faults (it changes its state in one store transaction)")
		}
		firewallCase(t, h, true)
	})
}

// lifecycle: enable → grant → expiry → disable on every VM returns every
// NSG to exactly its state before, and in between the ports are closed to
// strangers and open to the grantee exactly while granted.
func lifecycle(t *testing.T, h Harness, faults bool) {
	if faults {
		h.Faults(true)
		defer h.Faults(false)
	}
	inv := Inventory()
	before := snapshot(t, h.Cloud)
	inv.VMs = direct(inv.VMs)
	for _, vm := range inv.VMs {
		if allowed(t, h.Cloud, vm, granted, 22) {
			t.Fatalf("%s: the fixture should not let the grantee in before a grant", vm.Name)
		}
	}
	for _, vm := range inv.VMs {
		apply(t, h.Provider, vm, jit.Desired{VMID: vm.ID, Guarded: ports})
	}
	enabled := snapshot(t, h.Cloud)
	for _, vm := range inv.VMs {
		for _, g := range ports {
			if allowed(t, h.Cloud, vm, stranger, g.Port) {
				t.Errorf("%s: port %d open to a stranger after enable", vm.Name, g.Port)
			}
		}
		for _, id := range uniquePath(vm) {
			n := h.Cloud.NSG(t, id)
			for _, g := range ports {
				name := sim.DenyRuleName(vm, g.Port, g.Protocol)
				if !slices.ContainsFunc(n.SecurityRules, func(r netrule.SecurityRule) bool { return r.Name == name && r.Access == netrule.Deny }) {
					t.Errorf("%s: NSG %s has no deny rule %s", vm.Name, id, name)
				}
			}
		}
	}
	// The user's corporate SSH rule keeps priority over JIT's deny in the
	// subnet NSG.
	appNSG, err := netrule.CompileNSG(h.Cloud.NSG(t, nsgID("app-nsg")))
	if err != nil {
		t.Fatal(err)
	}
	corp := netrule.EvaluateAzure([]*netrule.CompiledNSG{appNSG}, netrule.NewEnv(netip.MustParsePrefix("10.7.0.0/16")),
		netrule.Query{Destination: netip.MustParseAddr("10.7.1.4"), Port: 22, Protocol: netrule.Tcp, Source: netrule.AddressSource(netip.MustParseAddr("203.0.113.9"))})
	if !corp.Allowed || corp.Deciding().Rule != "AllowSSHFromCorp" {
		t.Errorf("app-nsg: 203.0.113.9 to 22 decided by %v after enable, want the user's AllowSSHFromCorp", corp.Deciding())
	}
	// Idempotent: the same state again changes nothing.
	for _, vm := range inv.VMs {
		apply(t, h.Provider, vm, jit.Desired{VMID: vm.ID, Guarded: ports})
	}
	sameNSGs(t, "second enable", snapshot(t, h.Cloud), enabled)

	for _, vm := range inv.VMs {
		d := jit.Desired{VMID: vm.ID, Guarded: ports, Grants: []jit.DesiredGrant{grant(vm, "g-"+vm.Name, 22)}}
		obs := apply(t, h.Provider, vm, d)
		if !slices.Equal(obs.Enforced, []string{"g-" + vm.Name}) {
			t.Errorf("%s: enforced %v after grant", vm.Name, obs.Enforced)
		}
		if !allowed(t, h.Cloud, vm, granted, 22) {
			t.Errorf("%s: grantee cannot reach 22 during the grant", vm.Name)
		}
		if allowed(t, h.Cloud, vm, stranger, 22) || allowed(t, h.Cloud, vm, granted, 3389) {
			t.Errorf("%s: the grant opened more than 22 to the grantee", vm.Name)
		}
	}
	for _, vm := range inv.VMs { // expiry
		apply(t, h.Provider, vm, jit.Desired{VMID: vm.ID, Guarded: ports})
		if allowed(t, h.Cloud, vm, granted, 22) {
			t.Errorf("%s: grantee still reaches 22 after expiry", vm.Name)
		}
	}
	sameNSGs(t, "after expiry", snapshot(t, h.Cloud), enabled)
	for _, vm := range inv.VMs { // disable
		apply(t, h.Provider, vm, jit.Desired{VMID: vm.ID})
	}
	sameNSGs(t, "after disable", snapshot(t, h.Cloud), before)
}

func uniquePath(vm inventory.VM) []string {
	var out []string
	for _, h := range paths()[vm.ID] {
		for _, id := range h.nsgs {
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	return out
}

// drift: a deny rule deleted behind JIT's back is re-created by the next
// Apply of the same desired state, and a grant's allow rule removed by
// someone is put back while the grant lasts.
func drift(t *testing.T, h Harness) {
	vm := Inventory().VMs[0]
	d := jit.Desired{VMID: vm.ID, Guarded: ports, Grants: []jit.DesiredGrant{grant(vm, "g-drift", 22)}}
	apply(t, h.Provider, vm, d)
	want := snapshot(t, h.Cloud)
	deny := sim.DenyRuleName(vm, 22, netrule.Tcp)
	h.Cloud.DeleteRule(t, nsgID("a-nsg"), deny)
	h.Cloud.DeleteRule(t, nsgID("app-nsg"), sim.AllowRuleName(vm.ID, "g-drift"))
	if allowed(t, h.Cloud, vm, granted, 22) {
		t.Fatalf("deleting the allow rule from the subnet NSG should have shut the grantee out")
	}
	apply(t, h.Provider, vm, d)
	if allowed(t, h.Cloud, vm, stranger, 22) {
		t.Errorf("22 still open to a stranger after the re-assertion")
	}
	if !allowed(t, h.Cloud, vm, granted, 22) {
		t.Errorf("the grant's allow rule was not put back")
	}
	got := snapshot(t, h.Cloud)
	for id, w := range want {
		// Same rules by name and access: the re-created rule is appended
		// to the list and may take another free priority in its window.
		if !sameRuleSet(got[id].SecurityRules, w.SecurityRules) {
			t.Errorf("NSG %s after re-assertion\n got %+v\nwant %+v", id, got[id].SecurityRules, w.SecurityRules)
		}
	}
}

func sameRuleSet(a, b []netrule.SecurityRule) bool {
	key := func(rs []netrule.SecurityRule) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Name+"@"+string(r.Access))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}
