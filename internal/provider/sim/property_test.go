package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"testing"

	"pgregory.net/rapid"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// The invariant, over random NSGs and security groups:
//
//	enable -> request (grants) -> expiry leaves every object identical, rule
//	for rule, to the state after enable; disable then leaves everything
//	identical to the state before enable.
//
// Along the way it checks what the rules mean: after enable the guarded
// ports are closed except where a user rule that already covered the port
// decides first; a grant opens its port to its source; Check agrees with
// Apply; a failed Apply writes nothing; every Apply is idempotent.
// rapid's default (100 cases) runs in well under a second; -rapid.checks=N
// runs more.

var vmAddr = netip.MustParseAddr("10.0.1.4")

var probeSources = []netip.Addr{
	netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("10.1.1.1"), netip.MustParseAddr("203.0.113.7"),
	netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"),
}

func genPortRange(t *rapid.T, label string) string {
	switch rapid.IntRange(0, 4).Draw(t, label+"kind") {
	case 0:
		return "*"
	case 1:
		return rapid.SampledFrom([]string{"22", "3389", "80", "443", "20-30", "3000-4000", "5985-5986", "1-1024"}).Draw(t, label)
	case 2:
		return strconv.Itoa(rapid.IntRange(1, 65535).Draw(t, label))
	default:
		a := rapid.IntRange(0, 65535).Draw(t, label+"from")
		b := rapid.IntRange(a, min(65535, a+rapid.IntRange(0, 5000).Draw(t, label+"width"))).Draw(t, label+"to")
		return fmt.Sprintf("%d-%d", a, b)
	}
}

func genNSG(t *rapid.T, name string) netrule.NSG {
	n := rapid.IntRange(0, 12).Draw(t, name+"-n")
	prioGen := rapid.OneOf(rapid.IntRange(100, 125), rapid.IntRange(100, 4096), rapid.IntRange(4085, 4096))
	prios := rapid.SliceOfNDistinct(prioGen, n, n, rapid.ID[int]).Draw(t, name+"-prios")
	g := nsg(name)
	for i, prio := range prios {
		l := fmt.Sprintf("%s-r%d-", name, i)
		r := netrule.SecurityRule{
			Name:                     fmt.Sprintf("user-%d", i),
			Priority:                 prio,
			Direction:                rapid.SampledFrom([]netrule.Direction{netrule.Inbound, netrule.Inbound, netrule.Inbound, netrule.Outbound}).Draw(t, l+"dir"),
			Access:                   rapid.SampledFrom([]netrule.Access{netrule.Allow, netrule.Deny}).Draw(t, l+"access"),
			Protocol:                 rapid.SampledFrom([]netrule.Protocol{netrule.Tcp, netrule.Udp, netrule.Icmp, netrule.Any}).Draw(t, l+"proto"),
			SourceAddressPrefix:      rapid.SampledFrom([]string{"*", "Internet", "VirtualNetwork", "10.0.0.0/8", "198.51.100.0/24", "203.0.113.7", "2001:db8::/32"}).Draw(t, l+"src"),
			SourcePortRange:          "*",
			DestinationAddressPrefix: rapid.SampledFrom([]string{"*", "10.0.1.4", "10.0.1.0/24", "10.9.9.9"}).Draw(t, l+"dst"),
		}
		if rapid.Bool().Draw(t, l+"plural") {
			r.DestinationPortRanges = []string{genPortRange(t, l+"p0"), genPortRange(t, l+"p1")}
		} else {
			r.DestinationPortRange = genPortRange(t, l+"p")
		}
		g.SecurityRules = append(g.SecurityRules, r)
	}
	return g
}

func genGuarded(t *rapid.T) []jit.GuardedPort {
	ports := rapid.SliceOfNDistinct(rapid.OneOf(rapid.SampledFrom([]int{22, 3389, 5985, 5986, 80}), rapid.IntRange(1, 65535)), 1, 3, rapid.ID[int]).Draw(t, "guardedPorts")
	var out []jit.GuardedPort
	for i, p := range ports {
		out = append(out, jit.GuardedPort{Port: p, Protocol: rapid.SampledFrom([]netrule.Protocol{netrule.Tcp, netrule.Udp, netrule.Any}).Draw(t, fmt.Sprintf("gproto%d", i))})
	}
	return out
}

func genGrants(t *rapid.T, guarded []jit.GuardedPort) []jit.DesiredGrant {
	n := rapid.IntRange(0, 4).Draw(t, "grants")
	var out []jit.DesiredGrant
	for i := range n {
		gp := guarded[rapid.IntRange(0, len(guarded)-1).Draw(t, fmt.Sprintf("grant%d-port", i))]
		src := rapid.SampledFrom([]string{"*", "198.18.0.10", "198.18.0.0/24", "203.0.113.0/24", "2001:2::/48", "10.1.1.1"}).Draw(t, fmt.Sprintf("grant%d-src", i))
		out = append(out, grant(fmt.Sprintf("grant-%d-%d", i, rapid.IntRange(0, 1e6).Draw(t, fmt.Sprintf("grant%d-id", i))), gp.Port, gp.Protocol, src))
	}
	return out
}

// userCoverMax is the highest priority of a user inbound rule whose protocol
// and destination ports overlap (port, proto), or 99; written apart from
// coveringMax so the test does not check the code against itself.
func userCoverMax(n netrule.NSG, port int, proto netrule.Protocol) int {
	lo := netrule.MinPriority - 1
	for _, r := range n.SecurityRules {
		if r.Direction != netrule.Inbound || isJITRule(r) || !(r.Protocol == netrule.Any || proto == netrule.Any || r.Protocol == proto) {
			continue
		}
		ranges, _ := netrule.ParsePortRanges(r.DestinationPorts())
		if slices.ContainsFunc(ranges, func(pr netrule.PortRange) bool { return pr.From <= port && port <= pr.To }) {
			lo = max(lo, r.Priority)
		}
	}
	return lo
}

func concrete(p netrule.Protocol) []netrule.Protocol {
	if p == netrule.Any {
		return []netrule.Protocol{netrule.Tcp, netrule.Udp}
	}
	return []netrule.Protocol{p}
}

func sampleAddr(s jit.Source) netip.Addr {
	if s.IsAny() {
		return netip.MustParseAddr("198.51.100.7")
	}
	return s.Prefix().Addr()
}

// outcomes counts how lifecycles ended, so a test can insist that the
// generators reach every path (a generator that never gets past enable
// would make the invariant vacuous).
type outcomes struct{ enableNoRoom, grantNoRoom, granted, grantedSome int }

func (o outcomes) check(t *testing.T) {
	t.Logf("outcomes: %+v", o)
	if o.granted == 0 || o.grantedSome == 0 {
		t.Errorf("no case reached a state with grants in force: %+v", o)
	}
}

// lifecycle runs enable -> grants -> expiry -> disable and checks the
// invariant; onEnabled and onGranted check the meaning of each state.
func lifecycle(t *rapid.T, out *outcomes, m *memStore, p *Provider, vm inventory.VM, guarded []jit.GuardedPort, grants []jit.DesiredGrant,
	onEnabled, onGranted func(before snapshot)) {
	en := jit.Desired{VMID: vm.ID, Guarded: guarded}
	gr := jit.Desired{VMID: vm.ID, Guarded: guarded, Grants: grants}
	before := m.snap()

	checkErr := p.Check(ctx, vm, en)
	if d := diff(before, m.snap()); d != "" {
		t.Fatalf("Check wrote:\n%s", d)
	}
	_, err := p.Apply(ctx, vm, en)
	if (checkErr == nil) != (err == nil) {
		t.Fatalf("Check said %v, Apply said %v", checkErr, err)
	}
	if err != nil {
		if !errors.Is(err, ErrNoRoom) {
			t.Fatalf("enable: %v", err)
		}
		if d := diff(before, m.snap()); d != "" {
			t.Fatalf("failed enable wrote:\n%s", d)
		}
		out.enableNoRoom++
		return
	}
	enabled := m.snap()
	onEnabled(before)
	mustApply(t, p, vm, en)
	if d := diff(enabled, m.snap()); d != "" {
		t.Fatalf("second enable changed:\n%s", d)
	}

	checkErr = p.Check(ctx, vm, gr)
	obs, err := p.Apply(ctx, vm, gr)
	if (checkErr == nil) != (err == nil) {
		t.Fatalf("Check said %v, Apply said %v", checkErr, err)
	}
	if err != nil {
		if !errors.Is(err, ErrNoRoom) {
			t.Fatalf("grant: %v", err)
		}
		if d := diff(enabled, m.snap()); d != "" {
			t.Fatalf("failed grant wrote:\n%s", d)
		}
		out.grantNoRoom++
	} else {
		out.granted++
		if len(grants) > 0 {
			out.grantedSome++
		}
		if len(obs.Enforced) != len(grants) {
			t.Fatalf("enforced %v, want %d grants", obs.Enforced, len(grants))
		}
		granted := m.snap()
		onGranted(enabled)
		mustApply(t, p, vm, gr)
		if d := diff(granted, m.snap()); d != "" {
			t.Fatalf("second grant apply changed:\n%s", d)
		}
	}

	mustApply(t, p, vm, en) // expiry
	if d := diff(enabled, m.snap()); d != "" {
		t.Fatalf("after expiry, not the state after enable:\n%s", d)
	}
	mustApply(t, p, vm, jit.Desired{VMID: vm.ID}) // disable
	if d := diff(before, m.snap()); d != "" {
		t.Fatalf("after disable, not the state before enable:\n%s", d)
	}
}

func TestPropertyAzureLifecycle(t *testing.T) {
	var out outcomes
	defer func() { out.check(t) }()
	rapid.Check(t, func(t *rapid.T) {
		m := newMemStore()
		where := rapid.IntRange(1, 3).Draw(t, "nsgs") // 1 subnet, 2 NIC, 3 both
		subnetNSG, nicNSG := "", ""
		if where&1 != 0 {
			subnetNSG = azID("nsg", "subnet-nsg")
			m.put(t, inventory.KindNSG, subnetNSG, genNSG(t, "subnet-nsg"))
		}
		if where&2 != 0 {
			nicNSG = azID("nsg", "nic-nsg")
			m.put(t, inventory.KindNSG, nicNSG, genNSG(t, "nic-nsg"))
		}
		vm := azureVM(t, m, "vm1", vmAddr.String(), "default", subnetNSG, nicNSG)
		p := New(m)
		// A neighbour in the same subnet with JIT on already: its rules are
		// part of the "before" state and must survive untouched.
		if rapid.Bool().Draw(t, "neighbour") {
			nb := azureVM(t, m, "vm2", "10.0.1.5", "default", subnetNSG, nicNSG)
			_, _ = p.Apply(ctx, nb, enable(nb, tcp(22)))
		}
		guarded := genGuarded(t)
		grants := genGrants(t, guarded)
		var path []string
		for _, id := range []string{subnetNSG, nicNSG} {
			if id != "" {
				path = append(path, id)
			}
		}

		userRules := func(n netrule.NSG) []netrule.SecurityRule {
			var out []netrule.SecurityRule
			for _, r := range n.SecurityRules {
				if !isJITRule(r) {
					out = append(out, r)
				}
			}
			return out
		}
		// expect is the access for src on (port, proto) given user rules
		// ahead of a JIT rule at prio whose access is jitAccess.
		expect := func(n netrule.NSG, src netip.Addr, port int, proto netrule.Protocol, prio int, jitAccess netrule.Access) netrule.Access {
			head := netrule.NSG{SecurityRules: slices.DeleteFunc(userRules(n), func(r netrule.SecurityRule) bool { return r.Priority > prio })}
			if a, by := nsgDecide(head, src, vmAddr, port, proto); by != "(none)" && by != "DenyAllInBound" && by != "AllowVnetInBound" && by != "AllowAzureLoadBalancerInBound" {
				return a
			}
			return jitAccess
		}

		onEnabled := func(before snapshot) {
			for _, id := range path {
				n := getObj[netrule.NSG](t, m, inventory.KindNSG, id)
				seen := map[int]bool{}
				for _, r := range n.SecurityRules {
					if r.Direction == netrule.Inbound {
						if seen[r.Priority] || r.Priority < netrule.MinPriority || r.Priority > netrule.MaxPriority {
							t.Fatalf("%s: inbound priority %d duplicated or out of range", n.Name, r.Priority)
						}
						seen[r.Priority] = true
					}
				}
				var orig netrule.NSG
				mustUnmarshal(t, before["nsg/"+inventory.Key(id)], &orig)
				if !jsonEqual(userRules(n), userRules(orig)) {
					t.Fatalf("%s: user rules changed", n.Name)
				}
				minUser := netrule.MaxPriority + 1
				for _, r := range userRules(n) {
					if r.Direction == netrule.Inbound {
						minUser = min(minUser, r.Priority)
					}
				}
				for _, g := range guarded {
					deny, ok := ruleByName(n, DenyRuleName(vm, g.Port, g.Protocol))
					if !ok {
						t.Fatalf("%s: no deny rule for %d/%s", n.Name, g.Port, g.Protocol)
					}
					lo := userCoverMax(n, g.Port, g.Protocol)
					if deny.Priority <= lo {
						t.Fatalf("%s: deny %d/%s at %d, not after covering rule at %d", n.Name, g.Port, g.Protocol, deny.Priority, lo)
					}
					if lo < netrule.MinPriority && deny.Priority > minUser {
						for q := netrule.MinPriority; q < minUser; q++ {
							if !seen[q] {
								t.Fatalf("%s: no covering rule, deny at %d below user rule at %d although %d was free", n.Name, deny.Priority, minUser, q)
							}
						}
					}
					for _, src := range probeSources {
						for _, proto := range concrete(g.Protocol) {
							want := expect(n, src, g.Port, proto, deny.Priority, netrule.Deny)
							if got, by := nsgDecide(n, src, vmAddr, g.Port, proto); got != want {
								t.Fatalf("%s: %s -> %d/%s: %s by %s, want %s", n.Name, src, g.Port, proto, got, by, want)
							}
						}
					}
				}
			}
		}
		onGranted := func(enabled snapshot) {
			for _, id := range path {
				n := getObj[netrule.NSG](t, m, inventory.KindNSG, id)
				for _, gr := range grants {
					gp, _ := guardFor(guarded, gr)
					deny, _ := ruleByName(n, DenyRuleName(vm, gp.Port, gp.Protocol))
					allow, ok := ruleByName(n, AllowRuleName(vm.ID, gr.GrantID))
					lo := userCoverMax(n, gp.Port, gp.Protocol)
					if !ok || allow.Priority <= lo || allow.Priority >= deny.Priority {
						t.Fatalf("%s: allow of %s at %d, want between %d and deny %d", n.Name, gr.GrantID, allow.Priority, lo, deny.Priority)
					}
					src := sampleAddr(gr.Source)
					for _, proto := range concrete(gr.Protocol) {
						want := expect(n, src, gr.Port, proto, allow.Priority, netrule.Allow)
						if got, by := nsgDecide(n, src, vmAddr, gr.Port, proto); got != want {
							t.Fatalf("%s: grant %s: %s -> %d/%s: %s by %s, want %s", n.Name, gr.GrantID, src, gr.Port, proto, got, by, want)
						}
					}
				}
			}
		}
		lifecycle(t, &out, m, p, vm, guarded, grants, onEnabled, onGranted)
	})
}

func genSG(t *rapid.T, id string) netrule.SecurityGroup {
	g := sg(id)
	n := rapid.IntRange(0, 5).Draw(t, id+"-n")
	for i := range n {
		l := fmt.Sprintf("%s-p%d-", id, i)
		proto := rapid.SampledFrom([]string{"tcp", "tcp", "udp", "icmp", "-1"}).Draw(t, l+"proto")
		p := netrule.IPPermission{IPProtocol: proto, FromPort: -1, ToPort: -1}
		if proto == "tcp" || proto == "udp" {
			r, _ := netrule.ParsePortRange(genPortRange(t, l+"ports"))
			p.FromPort, p.ToPort = r.From, r.To
		}
		for j, c := range rapid.SliceOfNDistinct(rapid.SampledFrom([]string{"0.0.0.0/0", "10.0.0.0/8", "203.0.113.0/24", "::/0", "2001:db8::/32"}), 1, 3, rapid.ID[string]).Draw(t, l+"src") {
			desc := ""
			if rapid.Bool().Draw(t, fmt.Sprintf("%sdesc%d", l, j)) {
				desc = "user says " + c
			}
			if netip.MustParsePrefix(c).Addr().Is4() {
				p.IPRanges = append(p.IPRanges, netrule.IPRange{CidrIP: c, Description: desc})
			} else {
				p.IPv6Ranges = append(p.IPv6Ranges, netrule.IPv6Range{CidrIPv6: c, Description: desc})
			}
		}
		g.IPPermissions = append(g.IPPermissions, p)
	}
	return g
}

func TestPropertyAWSLifecycle(t *testing.T) {
	var out outcomes
	defer func() { out.check(t) }()
	rapid.Check(t, func(t *rapid.T) {
		m := newMemStore()
		nsg := rapid.IntRange(1, 6).Draw(t, "sgs")
		var ids []string
		for i := range nsg {
			id := fmt.Sprintf("sg-u%d", i)
			m.put(t, inventory.KindSecurityGroup, id, genSG(t, id))
			ids = append(ids, id)
		}
		var enis [][]string
		for i := range rapid.IntRange(1, 2).Draw(t, "enis") {
			enis = append(enis, rapid.SliceOfNDistinct(rapid.SampledFrom(ids), 1, 5, rapid.ID[string]).Draw(t, fmt.Sprintf("eni%d", i)))
		}
		vm := awsVM(t, m, "vm1", enis...)
		p := New(m)
		var neighbourHolds []jit.GuardedPort
		if rapid.Bool().Draw(t, "neighbour") {
			nb := awsVM(t, m, "vm2", []string{enis[0][0]})
			neighbourHolds = []jit.GuardedPort{{Port: rapid.SampledFrom([]int{22, 80, 3389}).Draw(t, "nbport"), Protocol: netrule.Tcp}}
			mustApply(t, p, nb, enable(nb, neighbourHolds...))
		}
		guarded := genGuarded(t)
		grants := genGrants(t, guarded)

		userGroups := func(s snapshot) []netrule.SecurityGroup {
			var out []netrule.SecurityGroup
			seen := map[string]bool{}
			for _, e := range enis {
				for _, id := range e {
					if !seen[id] {
						seen[id] = true
						var g netrule.SecurityGroup
						mustUnmarshal(t, s["securityGroup/"+id], &g)
						out = append(out, g)
					}
				}
			}
			return out
		}
		heldBy := func(port int, proto string) bool {
			for _, g := range append(slices.Clone(guarded), neighbourHolds...) {
				if g.Port == port && slices.Contains(g.Protocol.EC2Protocols(), proto) {
					return true
				}
			}
			return false
		}
		onEnabled := func(before snapshot) {
			now, was := userGroups(m.snap()), userGroups(before)
			probePorts := []int{0, 21, 22, 23, 80, 443, 3389, 65535}
			for _, g := range guarded {
				probePorts = append(probePorts, g.Port-1, g.Port, g.Port+1)
				for _, proto := range g.Protocol.EC2Protocols() {
					for _, src := range probeSources {
						if sgAllows(now, src, proto, g.Port) {
							t.Fatalf("%s still allowed on %s/%d after enable", src, proto, g.Port)
						}
					}
				}
			}
			// Every other port: exactly what the user allowed.
			for _, port := range probePorts {
				if port < 0 || port > 65535 {
					continue
				}
				for _, proto := range []string{"tcp", "udp"} {
					if heldBy(port, proto) {
						continue
					}
					for _, src := range probeSources {
						if a, b := sgAllows(now, src, proto, port), sgAllows(was, src, proto, port); a != b {
							t.Fatalf("%s %s/%d: allowed %v after enable, %v before", src, proto, port, a, b)
						}
					}
				}
			}
		}
		onGranted := func(snapshot) {
			primary := getObj[inventory.ENI](t, m, inventory.KindENI, vm.ENIs[0])
			all := groupsOf(t, m, vm)
			for _, gr := range grants {
				if !slices.Contains(primary.SecurityGroups, GrantGroupID(gr.GrantID)) {
					t.Fatalf("grant %s group not on the primary ENI: %v", gr.GrantID, primary.SecurityGroups)
				}
				for _, proto := range gr.Protocol.EC2Protocols() {
					if src := sampleAddr(gr.Source); !sgAllows(all, src, proto, gr.Port) {
						t.Fatalf("grant %s: %s not allowed on %s/%d", gr.GrantID, src, proto, gr.Port)
					}
				}
			}
		}
		lifecycle(t, &out, m, p, vm, guarded, grants, onEnabled, onGranted)
	})
}

func mustUnmarshal(t tb, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}
