package sim

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/store"
)

func viewJSON(t *testing.T, p *Provider, vmID string) string {
	t.Helper()
	v, err := p.View(ctx, vmID)
	if err != nil {
		t.Fatalf("View(%s): %v", vmID, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAzureView(t *testing.T) {
	m := newMemStore()
	m.put(t, inventory.KindNSG, azID("nsg", "subnet-nsg"), nsg("subnet-nsg",
		inRule("AllowWeb", 300, netrule.Allow, netrule.Tcp, "*", "80"),
		netrule.SecurityRule{Name: "DenyOut", Priority: 100, Direction: netrule.Outbound, Access: netrule.Deny, Protocol: netrule.Any,
			SourceAddressPrefix: "*", DestinationAddressPrefix: "*", DestinationPortRange: "25"},
		inRule("AllowCorp", 200, netrule.Allow, netrule.Tcp, "203.0.113.0/24", "22")))
	m.put(t, inventory.KindNSG, azID("nsg", "nic-nsg"), nsg("nic-nsg"))
	vm := azureVM(t, m, "vm1", "10.0.1.4", "default", azID("nsg", "subnet-nsg"), azID("nsg", "nic-nsg"))
	p := New(m)
	before := viewJSON(t, p, vm.ID)

	v, err := p.View(ctx, inventory.Key(vm.ID)) // IDs are case-insensitive
	if err != nil {
		t.Fatal(err)
	}
	if v.VMID != vm.ID || v.Cloud != inventory.Azure || len(v.NetworkSecurityGroups) != 2 {
		t.Fatalf("view %+v", v)
	}
	sn, nn := v.NetworkSecurityGroups[0], v.NetworkSecurityGroups[1]
	if sn.Name != "subnet-nsg" || !slices.Equal(sn.Subnets, []string{azID("subnet", "default")}) || nn.Name != "nic-nsg" || !slices.Equal(nn.NetworkInterfaces, vm.NICs) {
		t.Errorf("path order or association: %+v / %+v", sn, nn)
	}
	var names []string
	for _, r := range sn.SecurityRules {
		names = append(names, r.Name)
	}
	want := []string{"AllowCorp", "AllowWeb", "AllowVnetInBound", "AllowAzureLoadBalancerInBound", "DenyAllInBound",
		"DenyOut", "AllowVnetOutBound", "AllowInternetOutBound", "DenyAllOutBound"}
	if !slices.Equal(names, want) {
		t.Errorf("evaluation order %v, want %v", names, want)
	}
	if len(nn.SecurityRules) != 6 {
		t.Errorf("empty NSG shows %d rules, want the 6 defaults", len(nn.SecurityRules))
	}

	mustApply(t, p, vm, enable(vm, tcp(22)))
	enabled := viewJSON(t, p, vm.ID)
	if enabled == before {
		t.Fatal("enable did not show in the view")
	}
	d := enable(vm, tcp(22))
	d.Grants = []jit.DesiredGrant{grant("g1", 22, netrule.Tcp, "198.18.0.1")}
	mustApply(t, p, vm, d)
	v, _ = p.View(ctx, vm.ID)
	var order []string
	for _, r := range v.NetworkSecurityGroups[0].SecurityRules[:4] {
		order = append(order, r.Name)
	}
	if !slices.Equal(order, []string{"AllowCorp", AllowRuleName(vm.ID, "g1"), DenyRuleName(vm, 22, netrule.Tcp), "AllowWeb"}) {
		t.Errorf("inbound order with a grant: %v", order)
	}
	mustApply(t, p, vm, enable(vm, tcp(22)))
	if got := viewJSON(t, p, vm.ID); got != enabled {
		t.Errorf("view after expiry differs from after enable:\n%s\n%s", got, enabled)
	}
	mustApply(t, p, vm, jit.Desired{VMID: vm.ID})
	if got := viewJSON(t, p, vm.ID); got != before {
		t.Errorf("view after disable differs from before:\n%s\n%s", got, before)
	}
	if _, err := p.View(ctx, azID("vm", "nope")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing VM: %v", err)
	}
}

func TestAWSView(t *testing.T) {
	m := newMemStore()
	m.put(t, inventory.KindSecurityGroup, "sg-b", sg("sg-b", perm("udp", 53, 53, "10.0.0.0/8"), perm("tcp", 443, 443, "0.0.0.0/0"), perm("tcp", 22, 22, "0.0.0.0/0")))
	m.put(t, inventory.KindSecurityGroup, "sg-a", sg("sg-a"))
	vm := awsVM(t, m, "web", []string{"sg-b", "sg-a"}, []string{"sg-a"})
	p := New(m)
	before := viewJSON(t, p, vm.ID)
	v, err := p.View(ctx, vm.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.NetworkInterfaces) != 2 || v.NetworkInterfaces[0].NetworkInterfaceID != vm.ENIs[0] {
		t.Fatalf("ENIs %+v", v.NetworkInterfaces)
	}
	g := v.NetworkInterfaces[0].Groups
	if len(g) != 2 || g[0].GroupID != "sg-b" || g[1].GroupID != "sg-a" {
		t.Fatalf("groups %+v", g)
	}
	var perms []string
	for _, p := range g[0].IPPermissions {
		perms = append(perms, netrule.EC2Protocol(p.Protocol())+"/"+p.Ports().String())
	}
	if !slices.Equal(perms, []string{"tcp/22", "tcp/443", "udp/53"}) {
		t.Errorf("permission order %v", perms)
	}
	if g[1].IPPermissions == nil {
		t.Error("empty group renders null permissions")
	}

	mustApply(t, p, vm, enable(vm, tcp(22)))
	enabled := viewJSON(t, p, vm.ID)
	d := enable(vm, tcp(22))
	d.Grants = []jit.DesiredGrant{grant("g1", 22, netrule.Tcp, "2001:2::/48")}
	mustApply(t, p, vm, d)
	v, _ = p.View(ctx, vm.ID)
	if last := v.NetworkInterfaces[0].Groups[2]; last.GroupID != GrantGroupID("g1") || last.IPPermissions[0].IPv6Ranges[0].CidrIPv6 != "2001:2::/48" {
		t.Errorf("grant group in view: %+v", last)
	}
	mustApply(t, p, vm, enable(vm, tcp(22)))
	if got := viewJSON(t, p, vm.ID); got != enabled {
		t.Errorf("view after expiry differs:\n%s\n%s", got, enabled)
	}
	mustApply(t, p, vm, jit.Desired{VMID: vm.ID})
	if got := viewJSON(t, p, vm.ID); got != before {
		t.Errorf("view after disable differs:\n%s\n%s", got, before)
	}
}

// TestMultiNICAndMovedNIC: a subnet NSG in front of two NICs gets one deny
// rule for both addresses; when a NIC loses its NSG, the VM's rules in the
// NSG it left are removed on the next Apply.
func TestMultiNICAndMovedNIC(t *testing.T) {
	m := newMemStore()
	sub, own := azID("nsg", "subnet-nsg"), azID("nsg", "nic2-nsg")
	m.put(t, inventory.KindNSG, sub, nsg("subnet-nsg", inRule("AllowWeb", 300, netrule.Allow, netrule.Tcp, "*", "80")))
	m.put(t, inventory.KindNSG, own, nsg("nic2-nsg", inRule("AllowWeb", 300, netrule.Allow, netrule.Tcp, "*", "80")))
	vm := azureVM(t, m, "vm1", "10.0.1.4", "default", sub, "")
	nic2 := inventory.NIC{ID: azID("nic", "vm1-nic2"), Subnet: azID("subnet", "default"), NSG: own,
		PrivateIPs: []netip.Addr{netip.MustParseAddr("10.0.1.14"), netip.MustParseAddr("10.0.1.15")}}
	m.put(t, inventory.KindNIC, nic2.ID, nic2)
	vm.NICs = append(vm.NICs, nic2.ID)
	m.put(t, inventory.KindVM, vm.ID, vm)
	p := New(m)
	before := m.snap()
	mustApply(t, p, vm, enable(vm, tcp(22)))

	deny, _ := ruleByName(getObj[netrule.NSG](t, m, inventory.KindNSG, sub), DenyRuleName(vm, 22, netrule.Tcp))
	if !slices.Equal(deny.DestinationAddressPrefixes, []string{"10.0.1.4", "10.0.1.14", "10.0.1.15"}) || deny.DestinationAddressPrefix != "" {
		t.Errorf("subnet NSG deny destinations %q / %v", deny.DestinationAddressPrefix, deny.DestinationAddressPrefixes)
	}
	deny2, _ := ruleByName(getObj[netrule.NSG](t, m, inventory.KindNSG, own), DenyRuleName(vm, 22, netrule.Tcp))
	if !slices.Equal(deny2.DestinationAddressPrefixes, []string{"10.0.1.14", "10.0.1.15"}) {
		t.Errorf("NIC NSG deny destinations %v", deny2.DestinationAddressPrefixes)
	}

	nic2.NSG = ""
	m.put(t, inventory.KindNIC, nic2.ID, nic2)
	mustApply(t, p, vm, enable(vm, tcp(22)))
	if got := getObj[netrule.NSG](t, m, inventory.KindNSG, own); !jsonEqual(got, nsg("nic2-nsg", inRule("AllowWeb", 300, netrule.Allow, netrule.Tcp, "*", "80"))) {
		t.Errorf("NSG the NIC left still has JIT rules: %+v", got.SecurityRules)
	}
	nic2.NSG = own
	m.put(t, inventory.KindNIC, nic2.ID, nic2)
	mustApply(t, p, vm, jit.Desired{VMID: vm.ID})
	if d := diff(before, m.snap()); d != "" {
		t.Errorf("after disable:\n%s", d)
	}
}

func TestDesiredForOtherVM(t *testing.T) {
	m := newMemStore()
	m.put(t, inventory.KindNSG, azID("nsg", "n"), nsg("n"))
	vm := azureVM(t, m, "vm1", "10.0.1.4", "default", azID("nsg", "n"), "")
	if err := New(m).Check(ctx, vm, jit.Desired{VMID: azID("vm", "other"), Guarded: []jit.GuardedPort{tcp(22)}}); err == nil {
		t.Error("Check accepted a Desired for another VM")
	}
}

// TestDisableWithMissingInventory: disabling still cleans up when the NIC
// or ENI that led to the firewall is gone from the inventory; enabling
// fails naming the missing object.
func TestDisableWithMissingInventory(t *testing.T) {
	t.Run("azure", func(t *testing.T) {
		m := newMemStore()
		id := azID("nsg", "n")
		m.put(t, inventory.KindNSG, id, nsg("n", inRule("AllowWeb", 300, netrule.Allow, netrule.Tcp, "*", "80")))
		vm := azureVM(t, m, "vm1", "10.0.1.4", "default", "", id)
		p := New(m)
		orig := getObj[netrule.NSG](t, m, inventory.KindNSG, id)
		mustApply(t, p, vm, enable(vm, tcp(22)))
		_ = m.ObjectTx(ctx, func(o store.Objects) error { return o.DeleteObject(ctx, inventory.KindNIC, inventory.Key(vm.NICs[0])) })
		if err := p.Check(ctx, vm, enable(vm, tcp(22))); !errors.Is(err, ErrInventory) || !strings.Contains(err.Error(), vm.NICs[0]) {
			t.Errorf("enable with a missing NIC: %v", err)
		}
		mustApply(t, p, vm, jit.Desired{VMID: vm.ID})
		if got := getObj[netrule.NSG](t, m, inventory.KindNSG, id); !jsonEqual(got, orig) {
			t.Errorf("JIT rules left: %+v", got.SecurityRules)
		}
	})
	t.Run("aws", func(t *testing.T) {
		m := newMemStore()
		orig := sg("sg-a", perm("tcp", 0, 65535, "0.0.0.0/0"))
		m.put(t, inventory.KindSecurityGroup, "sg-a", orig)
		vm := awsVM(t, m, "web", []string{"sg-a"})
		p := New(m)
		mustApply(t, p, vm, enable(vm, tcp(22)))
		_ = m.ObjectTx(ctx, func(o store.Objects) error { return o.DeleteObject(ctx, inventory.KindENI, vm.ENIs[0]) })
		if err := p.Check(ctx, vm, enable(vm, tcp(22))); !errors.Is(err, ErrInventory) || !strings.Contains(err.Error(), vm.ENIs[0]) {
			t.Errorf("enable with a missing ENI: %v", err)
		}
		mustApply(t, p, vm, jit.Desired{VMID: vm.ID})
		if got := getObj[netrule.SecurityGroup](t, m, inventory.KindSecurityGroup, "sg-a"); !jsonEqual(got, orig) || m.has(KindRevoked, "sg-a") {
			t.Errorf("group not restored: %+v", got)
		}
	})
}
