package sim

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

var (
	ctx      = context.Background()
	internet = netip.MustParseAddr("198.51.100.7")
	endTime  = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
)

func grant(id string, port int, proto netrule.Protocol, src string) jit.DesiredGrant {
	s, err := jit.ParseSource(src)
	if err != nil {
		panic(err)
	}
	return jit.DesiredGrant{GrantID: id, Port: port, Protocol: proto, Source: s, End: endTime}
}

func enable(vm inventory.VM, ports ...jit.GuardedPort) jit.Desired {
	return jit.Desired{VMID: vm.ID, Guarded: ports}
}

func tcp(port int) jit.GuardedPort { return jit.GuardedPort{Port: port, Protocol: netrule.Tcp} }

func mustApply(t tb, p *Provider, vm inventory.VM, d jit.Desired) jit.Observed {
	t.Helper()
	obs, err := p.Apply(ctx, vm, d)
	if err != nil {
		t.Fatalf("Apply(%s): %v", vm.Name, err)
	}
	return obs
}

// TestPriorityPlacement checks where the deny and allow rules go relative to
// the user's rules, and that the user's rules are untouched.
func TestPriorityPlacement(t *testing.T) {
	user := func(rs ...netrule.SecurityRule) []netrule.SecurityRule { return rs }
	cases := []struct {
		name  string
		rules []netrule.SecurityRule
		port  jit.GuardedPort
		// denyIn and allowIn are the inclusive bounds the rules' priorities
		// must fall in.
		denyIn, allowIn [2]int
		// decide is the access the internet and the grant source get after
		// enable and after the grant.
		internetAfterEnable, grantAfterGrant netrule.Access
	}{
		{
			name:   "existing covering rule at 200: deny after it, allow between",
			rules:  user(inRule("AllowSSHFromCorp", 200, netrule.Allow, netrule.Tcp, "203.0.113.0/24", "22"), inRule("AllowHTTPS", 300, netrule.Allow, netrule.Tcp, "*", "443")),
			port:   tcp(22),
			denyIn: [2]int{201, 299}, allowIn: [2]int{201, 299},
			internetAfterEnable: netrule.Deny, grantAfterGrant: netrule.Allow,
		},
		{
			name:   "no covering rule: deny on top of every custom rule, room left ahead",
			rules:  user(inRule("AllowHTTPS", 300, netrule.Allow, netrule.Tcp, "*", "443"), inRule("AllowDNS", 310, netrule.Allow, netrule.Udp, "*", "22")),
			port:   tcp(22),
			denyIn: [2]int{110, 110}, allowIn: [2]int{100, 109},
			internetAfterEnable: netrule.Deny, grantAfterGrant: netrule.Allow,
		},
		{
			name: "covering range and wildcard rules count; later non-covering ones do not",
			rules: user(inRule("AllowRange", 500, netrule.Allow, netrule.Any, "10.0.0.0/8", "20-30"),
				inRule("DenyAny", 150, netrule.Deny, netrule.Any, "192.0.2.0/24", "*"),
				inRule("AllowWeb", 600, netrule.Allow, netrule.Tcp, "*", "80")),
			port:   tcp(22),
			denyIn: [2]int{501, 599}, allowIn: [2]int{501, 599},
			internetAfterEnable: netrule.Deny, grantAfterGrant: netrule.Allow,
		},
		{
			name: "existing allow-any on the port keeps priority: JIT cannot close it",
			rules: user(inRule("AllowSSHAnywhere", 1000, netrule.Allow, netrule.Tcp, "*", "22"),
				inRule("AllowWeb", 1100, netrule.Allow, netrule.Tcp, "*", "80")),
			port:   tcp(22),
			denyIn: [2]int{1001, 1099}, allowIn: [2]int{1001, 1099},
			internetAfterEnable: netrule.Allow, grantAfterGrant: netrule.Allow,
		},
		{
			name: "stricter user deny still wins over a grant",
			rules: user(inRule("DenyGrantSource", 120, netrule.Deny, netrule.Tcp, "198.18.0.0/15", "22"),
				inRule("AllowWeb", 1100, netrule.Allow, netrule.Tcp, "*", "80")),
			port:   tcp(22),
			denyIn: [2]int{121, 1099}, allowIn: [2]int{121, 1099},
			internetAfterEnable: netrule.Deny, grantAfterGrant: netrule.Deny,
		},
		{
			name: "top full of non-covering rules: deny goes below them (same effect)",
			rules: user(inRule("A", 100, netrule.Allow, netrule.Tcp, "*", "80"), inRule("B", 101, netrule.Allow, netrule.Tcp, "*", "81"),
				inRule("C", 102, netrule.Allow, netrule.Tcp, "*", "82")),
			port:   tcp(22),
			denyIn: [2]int{113, 113}, allowIn: [2]int{103, 112},
			internetAfterEnable: netrule.Deny, grantAfterGrant: netrule.Allow,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemStore()
			m.put(t, inventory.KindNSG, azID("nsg", "nsg1"), nsg("nsg1", tc.rules...))
			vm := azureVM(t, m, "vm1", "10.0.1.4", "default", azID("nsg", "nsg1"), "")
			p := New(m)
			before := getObj[netrule.NSG](t, m, inventory.KindNSG, azID("nsg", "nsg1"))

			if err := p.Check(ctx, vm, enable(vm, tc.port)); err != nil {
				t.Fatalf("Check: %v", err)
			}
			mustApply(t, p, vm, enable(vm, tc.port))
			got := getObj[netrule.NSG](t, m, inventory.KindNSG, azID("nsg", "nsg1"))
			deny, ok := ruleByName(got, DenyRuleName(vm, tc.port.Port, tc.port.Protocol))
			if !ok {
				t.Fatalf("no deny rule in %+v", got.SecurityRules)
			}
			if deny.Priority < tc.denyIn[0] || deny.Priority > tc.denyIn[1] {
				t.Errorf("deny priority %d, want in %v", deny.Priority, tc.denyIn)
			}
			if deny.Access != netrule.Deny || deny.DestinationAddressPrefix != "10.0.1.4" || deny.SourceAddressPrefix != "*" || deny.DestinationPortRange != "22" || deny.Protocol != netrule.Tcp {
				t.Errorf("deny rule %+v", deny)
			}
			vmIP := netip.MustParseAddr("10.0.1.4")
			if a, by := nsgDecide(got, internet, vmIP, 22, netrule.Tcp); a != tc.internetAfterEnable {
				t.Errorf("internet -> :22 after enable: %s by %s, want %s", a, by, tc.internetAfterEnable)
			}

			d := enable(vm, tc.port)
			d.Grants = []jit.DesiredGrant{grant("g1", 22, netrule.Tcp, "198.18.0.10")}
			obs := mustApply(t, p, vm, d)
			if len(obs.Enforced) != 1 || obs.Enforced[0] != "g1" || obs.Pending {
				t.Errorf("observed %+v", obs)
			}
			granted := getObj[netrule.NSG](t, m, inventory.KindNSG, azID("nsg", "nsg1"))
			allow, ok := ruleByName(granted, AllowRuleName(vm.ID, "g1"))
			if !ok {
				t.Fatalf("no allow rule in %+v", granted.SecurityRules)
			}
			if allow.Priority < tc.allowIn[0] || allow.Priority > tc.allowIn[1] || allow.Priority >= deny.Priority {
				t.Errorf("allow priority %d, want in %v and before deny %d", allow.Priority, tc.allowIn, deny.Priority)
			}
			if allow.SourceAddressPrefix != "198.18.0.10" || allow.Access != netrule.Allow {
				t.Errorf("allow rule %+v", allow)
			}
			if a, by := nsgDecide(granted, netip.MustParseAddr("198.18.0.10"), vmIP, 22, netrule.Tcp); a != tc.grantAfterGrant {
				t.Errorf("grant source -> :22: %s by %s, want %s", a, by, tc.grantAfterGrant)
			}
			if a, by := nsgDecide(granted, netip.MustParseAddr("198.18.0.11"), vmIP, 22, netrule.Tcp); a != tc.internetAfterEnable {
				t.Errorf("other source -> :22 with grant: %s by %s, want %s", a, by, tc.internetAfterEnable)
			}
			// User rules untouched, in their order.
			var users []netrule.SecurityRule
			for _, r := range granted.SecurityRules {
				if !strings.HasPrefix(r.Name, RulePrefix) {
					users = append(users, r)
				}
			}
			if !jsonEqual(users, before.SecurityRules) {
				t.Errorf("user rules changed:\n%+v\nwant\n%+v", users, before.SecurityRules)
			}
			// Disable: back to exactly before.
			mustApply(t, p, vm, jit.Desired{VMID: vm.ID, Grants: d.Grants})
			if after := getObj[netrule.NSG](t, m, inventory.KindNSG, azID("nsg", "nsg1")); !jsonEqual(after, before) {
				t.Errorf("after disable %+v, want %+v", after, before)
			}
		})
	}
}

func TestNoRoom(t *testing.T) {
	t.Run("covering rule at 4096: no priority after it", func(t *testing.T) {
		m := newMemStore()
		m.put(t, inventory.KindNSG, azID("nsg", "nsg1"), nsg("nsg1", inRule("Last", 4096, netrule.Allow, netrule.Tcp, "10.0.0.0/8", "22")))
		vm := azureVM(t, m, "vm1", "10.0.1.4", "default", azID("nsg", "nsg1"), "")
		p := New(m)
		before := m.snap()
		for name, err := range map[string]error{"Check": p.Check(ctx, vm, enable(vm, tcp(22))), "Apply": func() error { _, err := p.Apply(ctx, vm, enable(vm, tcp(22))); return err }()} {
			if !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), "after rule Last (priority 4096)") || !strings.Contains(err.Error(), "nsg1") {
				t.Errorf("%s: %v, want ErrNoRoom naming nsg1 and rule Last", name, err)
			}
		}
		if d := diff(before, m.snap()); d != "" {
			t.Errorf("failed Apply wrote:\n%s", d)
		}
	})
	t.Run("room for the deny only: the grant fails, naming the deny rule", func(t *testing.T) {
		m := newMemStore()
		m.put(t, inventory.KindNSG, azID("nsg", "nsg1"), nsg("nsg1", inRule("AlmostLast", 4095, netrule.Allow, netrule.Tcp, "10.0.0.0/8", "22")))
		vm := azureVM(t, m, "vm1", "10.0.1.4", "default", azID("nsg", "nsg1"), "")
		p := New(m)
		mustApply(t, p, vm, enable(vm, tcp(22)))
		enabled := m.snap()
		d := enable(vm, tcp(22))
		d.Grants = []jit.DesiredGrant{grant("g1", 22, netrule.Tcp, "198.18.0.10")}
		err := p.Check(ctx, vm, d)
		if !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), "grant g1") || !strings.Contains(err.Error(), "priority 4096") {
			t.Errorf("Check: %v", err)
		}
		if _, err := p.Apply(ctx, vm, d); !errors.Is(err, ErrNoRoom) {
			t.Errorf("Apply: %v", err)
		}
		if d := diff(enabled, m.snap()); d != "" {
			t.Errorf("failed Apply wrote:\n%s", d)
		}
	})
}

// TestEveryNSGOnPath: inbound traffic passes the subnet NSG and the NIC
// NSG, so both get the deny and both get the grant's allow.
func TestEveryNSGOnPath(t *testing.T) {
	m := newMemStore()
	m.put(t, inventory.KindNSG, azID("nsg", "subnet-nsg"), nsg("subnet-nsg", inRule("AllowSSHCorp", 1000, netrule.Allow, netrule.Tcp, "203.0.113.0/24", "22")))
	m.put(t, inventory.KindNSG, azID("nsg", "nic-nsg"), nsg("nic-nsg", inRule("AllowWeb", 200, netrule.Allow, netrule.Tcp, "*", "80")))
	vm := azureVM(t, m, "vm1", "10.0.1.4", "default", azID("nsg", "subnet-nsg"), azID("nsg", "nic-nsg"))
	p := New(m)
	d := enable(vm, tcp(22))
	d.Grants = []jit.DesiredGrant{grant("g1", 22, netrule.Tcp, "198.18.0.0/24")}
	mustApply(t, p, vm, d)
	vmIP := netip.MustParseAddr("10.0.1.4")
	for _, name := range []string{"subnet-nsg", "nic-nsg"} {
		n := getObj[netrule.NSG](t, m, inventory.KindNSG, azID("nsg", name))
		if _, ok := ruleByName(n, DenyRuleName(vm, 22, netrule.Tcp)); !ok {
			t.Errorf("%s: no deny rule", name)
		}
		if _, ok := ruleByName(n, AllowRuleName(vm.ID, "g1")); !ok {
			t.Errorf("%s: no allow rule", name)
		}
		if a, by := nsgDecide(n, internet, vmIP, 22, netrule.Tcp); a != netrule.Deny {
			t.Errorf("%s: internet allowed on 22 by %s", name, by)
		}
		if a, by := nsgDecide(n, netip.MustParseAddr("198.18.0.99"), vmIP, 22, netrule.Tcp); a != netrule.Allow {
			t.Errorf("%s: grant source denied on 22 by %s", name, by)
		}
	}
}

func TestNoNSGIsUnprotectable(t *testing.T) {
	m := newMemStore()
	vm := azureVM(t, m, "bare", "10.0.1.4", "default", "", "")
	p := New(m)
	if err := p.Check(ctx, vm, enable(vm, tcp(22))); !errors.Is(err, ErrUnprotectable) || !strings.Contains(err.Error(), vm.ID) {
		t.Errorf("Check: %v, want ErrUnprotectable naming the VM", err)
	}
	if _, err := p.Apply(ctx, vm, enable(vm, tcp(22))); !errors.Is(err, ErrUnprotectable) {
		t.Errorf("Apply: %v", err)
	}
	// Disabling has nothing to do and succeeds.
	if _, err := p.Apply(ctx, vm, jit.Desired{VMID: vm.ID}); err != nil {
		t.Errorf("disable: %v", err)
	}
}

// TestSharedSubnetNSG: two VMs of the same name in one subnet NSG get
// separate rules; one VM's grant, expiry and disable leave the other's alone.
func TestSharedSubnetNSG(t *testing.T) {
	m := newMemStore()
	shared := azID("nsg", "shared")
	m.put(t, inventory.KindNSG, shared, nsg("shared", inRule("AllowWeb", 300, netrule.Allow, netrule.Tcp, "*", "80")))
	a := azureVM(t, m, "web", "10.0.1.4", "default", shared, "")
	// Same name, other resource group, same subnet.
	b := a
	b.ID = strings.Replace(a.ID, "rg1", "rg2", 1)
	nicB := inventory.NIC{ID: azID("nic", "web-nic-b"), Subnet: azID("subnet", "default"), PrivateIPs: []netip.Addr{netip.MustParseAddr("10.0.1.5")}}
	m.put(t, inventory.KindNIC, nicB.ID, nicB)
	b.NICs = []string{nicB.ID}
	m.put(t, inventory.KindVM, b.ID, b)
	if DenyRuleName(a, 22, netrule.Tcp) == DenyRuleName(b, 22, netrule.Tcp) {
		t.Fatal("two VMs of the same name share a deny rule name")
	}
	p := New(m)
	before := m.snap()
	mustApply(t, p, a, enable(a, tcp(22)))
	mustApply(t, p, b, enable(b, tcp(22)))
	bothEnabled := m.snap()

	n := getObj[netrule.NSG](t, m, inventory.KindNSG, shared)
	da, _ := ruleByName(n, DenyRuleName(a, 22, netrule.Tcp))
	db, _ := ruleByName(n, DenyRuleName(b, 22, netrule.Tcp))
	if da.Priority == 0 || db.Priority == 0 || da.Priority == db.Priority {
		t.Fatalf("deny priorities %d, %d", da.Priority, db.Priority)
	}
	if da.DestinationAddressPrefix != "10.0.1.4" || db.DestinationAddressPrefix != "10.0.1.5" {
		t.Errorf("destinations %q %q", da.DestinationAddressPrefix, db.DestinationAddressPrefix)
	}

	da2 := enable(a, tcp(22))
	da2.Grants = []jit.DesiredGrant{grant("ga", 22, netrule.Tcp, "198.18.0.1")}
	mustApply(t, p, a, da2)
	n = getObj[netrule.NSG](t, m, inventory.KindNSG, shared)
	if r, by := nsgDecide(n, netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("10.0.1.4"), 22, netrule.Tcp); r != netrule.Allow {
		t.Errorf("grant on A: A denied by %s", by)
	}
	if r, by := nsgDecide(n, netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("10.0.1.5"), 22, netrule.Tcp); r != netrule.Deny {
		t.Errorf("grant on A opened B (by %s)", by)
	}
	// Reconciling B (no grants) must not remove A's allow rule.
	mustApply(t, p, b, enable(b, tcp(22)))
	if _, ok := ruleByName(getObj[netrule.NSG](t, m, inventory.KindNSG, shared), AllowRuleName(a.ID, "ga")); !ok {
		t.Error("reconciling B removed A's allow rule")
	}
	mustApply(t, p, a, enable(a, tcp(22))) // A's grant expires
	if d := diff(bothEnabled, m.snap()); d != "" {
		t.Errorf("after expiry:\n%s", d)
	}
	mustApply(t, p, a, jit.Desired{VMID: a.ID})
	n = getObj[netrule.NSG](t, m, inventory.KindNSG, shared)
	if _, ok := ruleByName(n, DenyRuleName(a, 22, netrule.Tcp)); ok {
		t.Error("A's deny rule left after disabling A")
	}
	if got, _ := ruleByName(n, DenyRuleName(b, 22, netrule.Tcp)); !jsonEqual(got, db) {
		t.Errorf("disabling A changed B's deny rule: %+v, was %+v", got, db)
	}
	mustApply(t, p, b, jit.Desired{VMID: b.ID})
	if d := diff(before, m.snap()); d != "" {
		t.Errorf("after disabling both:\n%s", d)
	}
}

// TestAzureIdempotentAndConverges: a second Apply writes nothing; a deny
// rule a user rule now covers moves after it; a stale allow rule goes.
func TestAzureIdempotentAndConverges(t *testing.T) {
	m := newMemStore()
	id := azID("nsg", "nsg1")
	m.put(t, inventory.KindNSG, id, nsg("nsg1", inRule("AllowWeb", 300, netrule.Allow, netrule.Tcp, "*", "80")))
	vm := azureVM(t, m, "vm1", "10.0.1.4", "default", id, "")
	p := New(m)
	d := enable(vm, tcp(22), jit.GuardedPort{Port: 3389, Protocol: netrule.Any})
	d.Grants = []jit.DesiredGrant{grant("g2", 3389, netrule.Any, "*"), grant("g1", 22, netrule.Tcp, "2001:db8::/48")}
	mustApply(t, p, vm, d)
	first := m.snap()
	writes := m.writes
	// Same Desired in another order: same objects, nothing written.
	d.Guarded[0], d.Guarded[1] = d.Guarded[1], d.Guarded[0]
	d.Grants[0], d.Grants[1] = d.Grants[1], d.Grants[0]
	mustApply(t, p, vm, d)
	if df := diff(first, m.snap()); df != "" || m.writes != writes {
		t.Errorf("second Apply changed things (%d writes):\n%s", m.writes-writes, df)
	}

	// Partial / drifted state: a user rule on 22 appears after the deny, and
	// an allow rule of a grant that no longer exists is present.
	n := getObj[netrule.NSG](t, m, inventory.KindNSG, id)
	n.SecurityRules = append(n.SecurityRules,
		inRule("AllowSSHCorp", 2000, netrule.Allow, netrule.Tcp, "203.0.113.0/24", "22"),
		netrule.SecurityRule{Name: AllowRuleName(vm.ID, "gone"), Priority: 105, Direction: netrule.Inbound, Access: netrule.Allow, Protocol: netrule.Tcp,
			SourceAddressPrefix: "*", DestinationAddressPrefix: "10.0.1.4", DestinationPortRange: "22"})
	m.put(t, inventory.KindNSG, id, n)
	mustApply(t, p, vm, d)
	n = getObj[netrule.NSG](t, m, inventory.KindNSG, id)
	if _, ok := ruleByName(n, AllowRuleName(vm.ID, "gone")); ok {
		t.Error("stale allow rule kept")
	}
	deny, _ := ruleByName(n, DenyRuleName(vm, 22, netrule.Tcp))
	allow, _ := ruleByName(n, AllowRuleName(vm.ID, "g1"))
	if deny.Priority <= 2000 || allow.Priority <= 2000 || allow.Priority >= deny.Priority {
		t.Errorf("after a covering rule at 2000: deny %d, allow %d", deny.Priority, allow.Priority)
	}
	if r, _ := ruleByName(n, "AllowSSHCorp"); r.Priority != 2000 {
		t.Errorf("user rule changed: %+v", r)
	}
}

func TestRuleNames(t *testing.T) {
	long := strings.Repeat("x", 120)
	vm := inventory.VM{ID: azID("vm", long), Name: long + " with spaces"}
	for _, n := range []string{DenyRuleName(vm, 65535, netrule.Any), AllowRuleName(vm.ID, strings.Repeat("g", 200))} {
		if len(n) > MaxRuleNameLen || !strings.HasPrefix(n, RulePrefix) || strings.ContainsAny(n, " /") {
			t.Errorf("name %q (%d chars)", n, len(n))
		}
	}
	if AllowRuleName(vm.ID, strings.Repeat("g", 200)) == AllowRuleName(vm.ID, strings.Repeat("g", 199)) {
		t.Error("long grant IDs collide")
	}
	if DenyRuleName(vm, 22, netrule.Tcp) != DenyRuleName(inventory.VM{ID: strings.ToUpper(vm.ID), Name: vm.Name}, 22, netrule.Tcp) {
		t.Error("deny name depends on ID case")
	}
	if got := DenyRuleName(inventory.VM{ID: azID("vm", "vm1")}, 22, netrule.Tcp); !strings.HasSuffix(got, "-vm1-22-tcp") {
		t.Errorf("name without VM name: %q", got)
	}
}
