package sim

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

func perm(proto string, from, to int, cidrs ...string) netrule.IPPermission {
	p := netrule.IPPermission{IPProtocol: proto, FromPort: from, ToPort: to}
	for _, c := range cidrs {
		if strings.Contains(c, ":") {
			p.IPv6Ranges = append(p.IPv6Ranges, netrule.IPv6Range{CidrIPv6: c, Description: "user " + c})
		} else {
			p.IPRanges = append(p.IPRanges, netrule.IPRange{CidrIP: c, Description: "user " + c})
		}
	}
	return p
}

func sg(id string, perms ...netrule.IPPermission) netrule.SecurityGroup {
	return netrule.SecurityGroup{GroupID: id, GroupName: id + "-name", VpcID: "vpc-1", IPPermissions: perms}
}

// awsVM stores an instance with one ENI per list of group IDs.
func awsVM(t tb, m *memStore, name string, enis ...[]string) inventory.VM {
	t.Helper()
	vm := inventory.VM{ID: "/subscriptions/s1/resourceGroups/rg1/providers/AWS.EC2/instances/" + name, Name: name,
		Cloud: inventory.AWS, Provider: inventory.ProviderSim, InstanceID: "i-" + name}
	for i, groups := range enis {
		e := inventory.ENI{ID: fmt.Sprintf("eni-%s-%d", name, i), PrivateIPs: []netip.Addr{netip.AddrFrom4([4]byte{172, 31, byte(len(name)), byte(i + 1)})}, SecurityGroups: groups}
		m.put(t, inventory.KindENI, e.ID, e)
		vm.ENIs = append(vm.ENIs, e.ID)
	}
	m.put(t, inventory.KindVM, vm.ID, vm)
	return vm
}

// groupsOf returns the security groups attached to the instance's ENIs.
func groupsOf(t tb, m *memStore, vm inventory.VM) []netrule.SecurityGroup {
	t.Helper()
	var out []netrule.SecurityGroup
	for _, id := range vm.ENIs {
		for _, g := range getObj[inventory.ENI](t, m, inventory.KindENI, id).SecurityGroups {
			out = append(out, getObj[netrule.SecurityGroup](t, m, inventory.KindSecurityGroup, g))
		}
	}
	return out
}

func TestAWSRevokeSplitRestore(t *testing.T) {
	m := newMemStore()
	user := sg("sg-user",
		perm("tcp", 443, 443, "0.0.0.0/0"),
		perm("tcp", 22, 22, "203.0.113.0/24"),
		perm("tcp", 20, 30, "10.0.0.0/8", "2001:db8::/32"),
		perm("-1", -1, -1, "192.0.2.0/24"),
		perm("udp", 22, 22, "0.0.0.0/0"),
	)
	m.put(t, inventory.KindSecurityGroup, user.GroupID, user)
	vm := awsVM(t, m, "web", []string{"sg-user"}, []string{"sg-user"})
	p := New(m)
	before := m.snap()

	mustApply(t, p, vm, enable(vm, tcp(22)))
	enabled := m.snap()
	got := getObj[netrule.SecurityGroup](t, m, inventory.KindSecurityGroup, "sg-user")
	groups := []netrule.SecurityGroup{got}
	for _, src := range []string{"203.0.113.5", "10.1.2.3", "2001:db8::1", "192.0.2.9", "198.51.100.1"} {
		if sgAllows(groups, netip.MustParseAddr(src), "tcp", 22) {
			t.Errorf("%s still allowed on tcp/22 after enable", src)
		}
	}
	// Everything else the user allowed is still allowed.
	for _, c := range []struct {
		src   string
		proto string
		port  int
	}{{"10.1.2.3", "tcp", 20}, {"10.1.2.3", "tcp", 21}, {"10.1.2.3", "tcp", 23}, {"2001:db8::1", "tcp", 30},
		{"192.0.2.9", "tcp", 21}, {"192.0.2.9", "tcp", 23}, {"192.0.2.9", "udp", 22}, {"192.0.2.9", "tcp", 65535},
		{"198.51.100.1", "tcp", 443}, {"198.51.100.1", "udp", 22}} {
		if !sgAllows(groups, netip.MustParseAddr(c.src), c.proto, c.port) {
			t.Errorf("%s %s/%d no longer allowed", c.src, c.proto, c.port)
		}
	}
	if sgAllows(groups, netip.MustParseAddr("10.1.2.3"), "tcp", 31) {
		t.Error("remainder widened the range")
	}
	// The untouched permissions keep their place; remainders are marked.
	if !jsonEqual(got.IPPermissions[0], user.IPPermissions[0]) || !jsonEqual(got.IPPermissions[len(got.IPPermissions)-1], user.IPPermissions[4]) {
		t.Errorf("untouched permissions moved: %+v", got.IPPermissions)
	}
	marked := 0
	for _, p := range got.IPPermissions {
		for _, r := range p.IPRanges {
			if r.Description == remainderMark {
				marked++
			}
		}
	}
	if marked == 0 {
		t.Error("no remainder is marked")
	}
	rec := getObj[Revocation](t, m, KindRevoked, "sg-user")
	if len(rec.Revoked) != 3 || len(rec.Holders) != 1 || rec.Holders[0].VMID != inventory.Key(vm.ID) {
		t.Errorf("record %+v", rec)
	}

	// Idempotent.
	w := m.writes
	mustApply(t, p, vm, enable(vm, tcp(22)))
	if d := diff(enabled, m.snap()); d != "" || m.writes != w {
		t.Errorf("second enable changed things:\n%s", d)
	}

	// Grant: a new group on the primary ENI allows the source; expiry
	// detaches and deletes it.
	d := enable(vm, tcp(22))
	d.Grants = []jit.DesiredGrant{grant("g1", 22, netrule.Tcp, "198.18.0.0/24")}
	if obs := mustApply(t, p, vm, d); !slices.Equal(obs.Enforced, []string{"g1"}) {
		t.Errorf("observed %+v", obs)
	}
	gid := GrantGroupID("g1")
	if !strings.HasPrefix(gid, "sg-jit-") || len(gid) != len("sg-jit-")+17 {
		t.Errorf("group ID %q", gid)
	}
	primary := getObj[inventory.ENI](t, m, inventory.KindENI, vm.ENIs[0])
	second := getObj[inventory.ENI](t, m, inventory.KindENI, vm.ENIs[1])
	if !slices.Equal(primary.SecurityGroups, []string{"sg-user", gid}) || !slices.Equal(second.SecurityGroups, []string{"sg-user"}) {
		t.Errorf("attachments %v / %v", primary.SecurityGroups, second.SecurityGroups)
	}
	gg := getObj[netrule.SecurityGroup](t, m, inventory.KindSecurityGroup, gid)
	if gg.GroupName != "drawbridge-jit-g1" || gg.VpcID != "vpc-1" {
		t.Errorf("grant group %+v", gg)
	}
	all := groupsOf(t, m, vm)
	if !sgAllows(all, netip.MustParseAddr("198.18.0.7"), "tcp", 22) || sgAllows(all, netip.MustParseAddr("198.18.1.7"), "tcp", 22) {
		t.Errorf("grant group allows the wrong traffic: %+v", gg)
	}
	mustApply(t, p, vm, enable(vm, tcp(22)))
	if d := diff(enabled, m.snap()); d != "" {
		t.Errorf("after expiry:\n%s", d)
	}
	mustApply(t, p, vm, jit.Desired{VMID: vm.ID})
	if d := diff(before, m.snap()); d != "" {
		t.Errorf("after disable:\n%s", d)
	}
}

func TestAWSAnySourceGrant(t *testing.T) {
	m := newMemStore()
	m.put(t, inventory.KindSecurityGroup, "sg-a", sg("sg-a"))
	vm := awsVM(t, m, "web", []string{"sg-a"})
	d := enable(vm, jit.GuardedPort{Port: 3389, Protocol: netrule.Any})
	d.Grants = []jit.DesiredGrant{grant("g1", 3389, netrule.Any, "*")}
	mustApply(t, New(m), vm, d)
	all := groupsOf(t, m, vm)
	for _, c := range []struct{ src, proto string }{{"198.51.100.1", "tcp"}, {"198.51.100.1", "udp"}, {"2001:db8::9", "tcp"}} {
		if !sgAllows(all, netip.MustParseAddr(c.src), c.proto, 3389) {
			t.Errorf("* grant does not allow %s %s/3389", c.src, c.proto)
		}
	}
}

// TestAWSSharedGroupHolders: a group shared by two JIT-enabled instances is
// restored only when neither needs the revocation.
func TestAWSSharedGroupHolders(t *testing.T) {
	m := newMemStore()
	shared := sg("sg-shared", perm("tcp", 0, 65535, "10.0.0.0/8"), perm("tcp", 22, 22, "0.0.0.0/0"))
	m.put(t, inventory.KindSecurityGroup, shared.GroupID, shared)
	a := awsVM(t, m, "a", []string{"sg-shared"})
	b := awsVM(t, m, "bb", []string{"sg-shared"})
	p := New(m)
	before := m.snap()
	corp := netip.MustParseAddr("10.9.9.9")
	allows := func(port int) bool {
		return sgAllows([]netrule.SecurityGroup{getObj[netrule.SecurityGroup](t, m, inventory.KindSecurityGroup, "sg-shared")}, corp, "tcp", port)
	}

	mustApply(t, p, a, enable(a, tcp(22)))
	mustApply(t, p, b, enable(b, tcp(22), tcp(3389)))
	if allows(22) || allows(3389) || !allows(80) {
		t.Fatalf("both enabled: 22 %v, 3389 %v, 80 %v", allows(22), allows(3389), allows(80))
	}
	if rec := getObj[Revocation](t, m, KindRevoked, "sg-shared"); len(rec.Holders) != 2 {
		t.Errorf("holders %+v", rec.Holders)
	}
	// A disables: B still needs 22 and 3389 closed.
	mustApply(t, p, a, jit.Desired{VMID: a.ID})
	if allows(22) || allows(3389) {
		t.Error("disabling A reopened a port B guards")
	}
	// B now guards only 3389: 22 comes back, 3389 stays closed.
	mustApply(t, p, b, enable(b, tcp(3389)))
	if !allows(22) || allows(3389) {
		t.Errorf("B guards 3389 only: 22 %v, 3389 %v", allows(22), allows(3389))
	}
	mustApply(t, p, b, jit.Desired{VMID: b.ID})
	if d := diff(before, m.snap()); d != "" {
		t.Errorf("after both disabled:\n%s", d)
	}
	// A group detached from B's ENI while B holds it is released too.
	mustApply(t, p, b, enable(b, tcp(22)))
	eni := getObj[inventory.ENI](t, m, inventory.KindENI, b.ENIs[0])
	eni.SecurityGroups = []string{}
	m.put(t, inventory.KindENI, eni.ID, eni)
	mustApply(t, p, b, enable(b, tcp(22)))
	if m.has(KindRevoked, "sg-shared") || !jsonEqual(getObj[netrule.SecurityGroup](t, m, inventory.KindSecurityGroup, "sg-shared"), shared) {
		t.Error("group no longer attached to B was not restored")
	}
}

func TestAWSSlotLimit(t *testing.T) {
	m := newMemStore()
	var five []string
	for i := range 5 {
		id := fmt.Sprintf("sg-%d", i)
		m.put(t, inventory.KindSecurityGroup, id, sg(id, perm("tcp", 22, 22, "0.0.0.0/0")))
		five = append(five, id)
	}
	vm := awsVM(t, m, "full", five)
	p := New(m)
	mustApply(t, p, vm, enable(vm, tcp(22))) // enabling needs no slot
	enabled := m.snap()
	d := enable(vm, tcp(22))
	d.Grants = []jit.DesiredGrant{grant("g1", 22, netrule.Tcp, "198.18.0.1")}
	want := "eni-full-0 has no free security group slot (5 of 5 used)"
	if err := p.Check(ctx, vm, d); !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), want) {
		t.Errorf("Check: %v, want %q", err, want)
	}
	if _, err := p.Apply(ctx, vm, d); !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), want) {
		t.Errorf("Apply: %v, want %q", err, want)
	}
	if df := diff(enabled, m.snap()); df != "" {
		t.Errorf("failed Apply wrote:\n%s", df)
	}
	// With four groups one grant fits, the second does not.
	eni := getObj[inventory.ENI](t, m, inventory.KindENI, vm.ENIs[0])
	eni.SecurityGroups = five[:4]
	m.put(t, inventory.KindENI, eni.ID, eni)
	mustApply(t, p, vm, d)
	d.Grants = append(d.Grants, grant("g2", 22, netrule.Tcp, "198.18.0.2"))
	if err := p.Check(ctx, vm, d); !errors.Is(err, ErrNoRoom) || !strings.Contains(err.Error(), "grant g2") {
		t.Errorf("Check second grant: %v", err)
	}
}

// TestAWSConverges: a grant group that exists but is not attached gets
// attached; an unattached group of an ended grant is deleted; Check writes
// nothing.
func TestAWSConverges(t *testing.T) {
	m := newMemStore()
	m.put(t, inventory.KindSecurityGroup, "sg-a", sg("sg-a", perm("tcp", 22, 22, "0.0.0.0/0")))
	vm := awsVM(t, m, "web", []string{"sg-a"})
	p := New(m)
	mustApply(t, p, vm, enable(vm, tcp(22)))
	enabled := m.snap()

	d := enable(vm, tcp(22))
	d.Grants = []jit.DesiredGrant{grant("g1", 22, netrule.Tcp, "198.18.0.1")}
	if err := p.Check(ctx, vm, d); err != nil {
		t.Fatal(err)
	}
	if df := diff(enabled, m.snap()); df != "" {
		t.Fatalf("Check wrote:\n%s", df)
	}
	mustApply(t, p, vm, d)
	granted := m.snap()

	// Partial state: the group exists but is detached.
	eni := getObj[inventory.ENI](t, m, inventory.KindENI, vm.ENIs[0])
	eni.SecurityGroups = []string{"sg-a"}
	m.put(t, inventory.KindENI, eni.ID, eni)
	mustApply(t, p, vm, d)
	if df := diff(granted, m.snap()); df != "" {
		t.Errorf("did not converge from a detached grant group:\n%s", df)
	}
	// Detached again, and the grant ended: the group is deleted.
	m.put(t, inventory.KindENI, eni.ID, eni)
	mustApply(t, p, vm, enable(vm, tcp(22)))
	if df := diff(enabled, m.snap()); df != "" {
		t.Errorf("unattached group of an ended grant:\n%s", df)
	}
}
