package nftables

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	nft "github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"

	"github.com/drawbridge/drawbridge/internal/netns"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// These tests program the kernel, always inside network namespaces they
// create (never the host's own firewall), on addresses from 198.18.0.0/15
// and 2001:2::/48. They need root; they skip, saying why, only when the
// machine lacks namespaces or the nf_tables features used.

// Topology: client A and client B each have a veth to the "vm" namespace.
//
//	A eth0 198.18.1.1/24 2001:2:0:1::1/64  <->  vm a0 198.18.1.2/24 2001:2:0:1::2/64
//	B eth0 198.18.2.1/24 2001:2:0:2::1/64  <->  vm b0 198.18.2.2/24 2001:2:0:2::2/64
type testbed struct {
	vm, a, b *netns.NS
	fd       *os.File
	fw       *Kernel
}

const (
	vmForA4 = "198.18.1.2"
	vmForB4 = "198.18.2.2"
	vmForA6 = "2001:2:0:1::2"
	vmForB6 = "2001:2:0:2::2"
)

var (
	addrA4 = netip.MustParsePrefix("198.18.1.1/32")
	netA6  = netip.MustParsePrefix("2001:2:0:1::/64")
)

// requireKernel skips unless namespaces and the nf_tables features drawbridge
// uses (inet tables, concatenated interval sets with timeouts, ct state) work.
func requireKernel(t testing.TB) {
	t.Helper()
	if err := netns.Available(); err != nil {
		t.Skipf("skipping: network namespaces unavailable: %v", err)
	}
	ns, err := netns.New("dbprobe")
	if err != nil {
		t.Skipf("skipping: cannot create a network namespace: %v", err)
	}
	defer ns.Close()
	f, err := ns.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	k := NewKernel(Options{NetNS: int(f.Fd())})
	defer k.Close()
	st := State{
		Guarded: []GuardedPort{{22, netrule.Tcp}},
		Grants:  []Grant{{Port: 22, Protocol: netrule.Any, Source: netip.MustParsePrefix("198.18.0.0/24"), End: time.Now().Add(time.Minute)}},
	}
	if err := k.Apply(context.Background(), st); err != nil {
		t.Skipf("skipping: kernel lacks nf_tables inet tables / concatenated interval sets with timeouts / ct: %v", err)
	}
}

func newTestbed(t testing.TB) *testbed {
	t.Helper()
	requireKernel(t)
	tb := &testbed{}
	mk := func(name string) *netns.NS {
		n, err := netns.New(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	tb.vm, tb.a, tb.b = mk("db-vm"), mk("db-a"), mk("db-b")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(netns.Veth(tb.a, "eth0", tb.vm, "a0"))
	must(netns.Veth(tb.b, "eth0", tb.vm, "b0"))
	for _, x := range []struct {
		ns  *netns.NS
		dev string
		p   string
	}{
		{tb.a, "eth0", "198.18.1.1/24"}, {tb.a, "eth0", "2001:2:0:1::1/64"},
		{tb.vm, "a0", "198.18.1.2/24"}, {tb.vm, "a0", "2001:2:0:1::2/64"},
		{tb.b, "eth0", "198.18.2.1/24"}, {tb.b, "eth0", "2001:2:0:2::1/64"},
		{tb.vm, "b0", "198.18.2.2/24"}, {tb.vm, "b0", "2001:2:0:2::2/64"},
	} {
		must(x.ns.AddAddr(x.dev, netip.MustParsePrefix(x.p)))
	}
	for _, port := range []string{"22", "3389", "8080"} {
		l, err := tb.vm.Listen("tcp", "[::]:"+port)
		must(err)
		t.Cleanup(func() { l.Close() })
		netns.Echo(l)
	}
	fd, err := tb.vm.Open()
	must(err)
	t.Cleanup(func() { fd.Close() })
	tb.fd = fd
	tb.fw = NewKernel(Options{NetNS: int(fd.Fd())})
	t.Cleanup(func() { tb.fw.Close() })
	return tb
}

const (
	dialOK   = 2 * time.Second
	dialFail = 400 * time.Millisecond // a dropped SYN is retried only after 1 s
)

func (tb *testbed) dial(from *netns.NS, host string, port int, timeout time.Duration) (net.Conn, error) {
	return from.Dial(context.Background(), "tcp", net.JoinHostPort(host, fmt.Sprint(port)), timeout)
}

func (tb *testbed) open(t *testing.T, what string, from *netns.NS, host string, port int) net.Conn {
	t.Helper()
	c, err := tb.dial(from, host, port, dialOK)
	if err != nil {
		t.Fatalf("%s: connect to %s port %d failed, want open: %v", what, host, port, err)
	}
	if err := netns.RoundTrip(c, "ping", dialOK); err != nil {
		t.Fatalf("%s: echo over new connection: %v", what, err)
	}
	return c
}

func (tb *testbed) assertOpen(t *testing.T, what string, from *netns.NS, host string, port int) {
	t.Helper()
	tb.open(t, what, from, host, port).Close()
}

func (tb *testbed) assertClosed(t *testing.T, what string, from *netns.NS, host string, port int) {
	t.Helper()
	c, err := tb.dial(from, host, port, dialFail)
	if err == nil {
		c.Close()
		t.Fatalf("%s: connect to %s port %d succeeded, want dropped", what, host, port)
	}
}

func (tb *testbed) apply(t *testing.T, st State) {
	t.Helper()
	if err := tb.fw.Apply(context.Background(), st); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

var guarded = []GuardedPort{{22, netrule.Tcp}, {3389, netrule.Tcp}}

func TestKernelJIT(t *testing.T) {
	tb := newTestbed(t)
	ctx := context.Background()

	// JIT enabled, no grant: 22 and 3389 closed to both, 8080 open to both.
	tb.apply(t, State{Guarded: guarded})
	for _, h := range []struct {
		ns     *netns.NS
		name   string
		v4, v6 string
	}{{tb.a, "A", vmForA4, vmForA6}, {tb.b, "B", vmForB4, vmForB6}} {
		tb.assertOpen(t, h.name+" before grant", h.ns, h.v4, 8080)
		tb.assertOpen(t, h.name+" before grant v6", h.ns, h.v6, 8080)
		tb.assertClosed(t, h.name+" before grant", h.ns, h.v4, 22)
		tb.assertClosed(t, h.name+" before grant v6", h.ns, h.v6, 22)
		tb.assertClosed(t, h.name+" before grant", h.ns, h.v4, 3389)
	}

	// A's grant opens 22 for A only; 3389 stays closed.
	end := time.Now().Add(1500 * time.Millisecond)
	grantA := Grant{ID: "gA", Port: 22, Protocol: netrule.Tcp, Source: addrA4, End: end}
	tb.apply(t, State{Guarded: guarded, Grants: []Grant{grantA}})
	tb.assertOpen(t, "A with grant", tb.a, vmForA4, 22)
	tb.assertClosed(t, "B without grant", tb.b, vmForB4, 22)
	tb.assertClosed(t, "A on 3389 (not granted)", tb.a, vmForA4, 3389)
	tb.assertClosed(t, "A over IPv6 (grant is IPv4)", tb.a, vmForA6, 22)
	live := tb.open(t, "A before end", tb.a, vmForA4, 22)
	defer live.Close()

	obs, err := tb.fw.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(obs.Grants) != 1 || obs.Grants[0].Source != addrA4 || obs.Grants[0].Port != 22 ||
		obs.Grants[0].End.Sub(end).Abs() > 50*time.Millisecond {
		t.Fatalf("Observe = %+v, want one grant like %+v", obs.Grants, grantA)
	}
	if ids := Enforced([]Grant{grantA}, obs, time.Now(), 50*time.Millisecond); len(ids) != 1 {
		t.Fatalf("Enforced = %v", ids)
	}

	// The kernel ends the grant by itself: no Apply from here on.
	time.Sleep(time.Until(end) + 100*time.Millisecond)
	if err := netns.RoundTrip(live, "still here", dialOK); err != nil {
		t.Fatalf("connection opened before the end time broke after it: %v", err)
	}
	tb.assertClosed(t, "A after end time", tb.a, vmForA4, 22)
	if obs, _ := tb.fw.Observe(ctx); len(obs.Grants) != 0 {
		t.Fatalf("Observe after end = %+v", obs.Grants)
	}

	// Revoke: Apply without the grant closes at once, established survive.
	grantA.End = time.Now().Add(time.Hour)
	tb.apply(t, State{Guarded: guarded, Grants: []Grant{grantA}})
	live2 := tb.open(t, "A with new grant", tb.a, vmForA4, 22)
	defer live2.Close()
	tb.apply(t, State{Guarded: guarded})
	tb.assertClosed(t, "A after revoke", tb.a, vmForA4, 22)
	if err := netns.RoundTrip(live2, "after revoke", dialOK); err != nil {
		t.Fatalf("established connection broke on revoke: %v", err)
	}

	// IPv6 grant (a /64 prefix) behaves the same.
	end6 := time.Now().Add(1500 * time.Millisecond)
	tb.apply(t, State{Guarded: guarded, Grants: []Grant{{ID: "g6", Port: 22, Protocol: netrule.Any, Source: netA6, End: end6}}})
	tb.assertOpen(t, "A v6 with grant", tb.a, vmForA6, 22)
	tb.assertClosed(t, "A v4 with v6 grant", tb.a, vmForA4, 22)
	tb.assertClosed(t, "B v6 without grant", tb.b, vmForB6, 22)
	live6 := tb.open(t, "A v6 before end", tb.a, vmForA6, 22)
	defer live6.Close()
	time.Sleep(time.Until(end6) + 100*time.Millisecond)
	if err := netns.RoundTrip(live6, "v6 still here", dialOK); err != nil {
		t.Fatalf("v6 connection opened before the end time broke after it: %v", err)
	}
	tb.assertClosed(t, "A v6 after end time", tb.a, vmForA6, 22)

	// "*" source opens for everyone; a prefix grant for B's /24.
	tb.apply(t, State{Guarded: guarded, Grants: []Grant{
		{Port: 3389, Protocol: netrule.Tcp, Source: AnySource()[0], End: time.Now().Add(time.Hour)},
		{Port: 3389, Protocol: netrule.Tcp, Source: AnySource()[1], End: time.Now().Add(time.Hour)},
		{Port: 22, Protocol: netrule.Tcp, Source: netip.MustParsePrefix("198.18.2.0/24"), End: time.Now().Add(time.Hour)},
	}})
	tb.assertOpen(t, "A 3389 with * grant", tb.a, vmForA4, 3389)
	tb.assertOpen(t, "B v6 3389 with * grant", tb.b, vmForB6, 3389)
	tb.assertOpen(t, "B 22 with /24 grant", tb.b, vmForB4, 22)
	tb.assertClosed(t, "A 22 outside /24 grant", tb.a, vmForA4, 22)

	// Disable: nothing of drawbridge remains; the ports are unguarded.
	if err := tb.fw.Disable(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tb.fw.Disable(ctx); err != nil {
		t.Fatalf("second Disable: %v", err)
	}
	if tabs := tb.tables(t); len(tabs) != 0 {
		t.Fatalf("tables after Disable: %v", tabs)
	}
	tb.assertOpen(t, "B after Disable", tb.b, vmForB4, 22)
}

// tables lists every nftables table in the vm namespace, over netlink.
func (tb *testbed) tables(t *testing.T) []string {
	t.Helper()
	c, err := nft.New(nft.WithNetNSFd(int(tb.fd.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, x := range ts {
		out = append(out, fmt.Sprintf("%d %s", x.Family, x.Name))
	}
	return out
}

func TestKernelObserveAfterRestart(t *testing.T) {
	tb := newTestbed(t)
	ctx := context.Background()
	now := time.Now()
	st := State{
		Guarded: []GuardedPort{{22, netrule.Any}, {3389, netrule.Tcp}},
		Grants: []Grant{
			{ID: "one", Port: 22, Protocol: netrule.Tcp, Source: addrA4, End: now.Add(time.Hour)},
			{ID: "net", Port: 3389, Protocol: netrule.Tcp, Source: netip.MustParsePrefix("198.18.2.0/24"), End: now.Add(30 * time.Minute)},
			{ID: "v6", Port: 22, Protocol: netrule.Any, Source: netA6, End: now.Add(2 * time.Hour)},
			{ID: "gone", Port: 22, Protocol: netrule.Tcp, Source: netip.MustParsePrefix("198.18.3.3/32"), End: now.Add(-time.Second)},
		},
	}
	tb.apply(t, st)
	before := tb.elements(t)

	// A new Kernel (an agent restarted) sees the same grants.
	fw2 := NewKernel(Options{NetNS: int(tb.fd.Fd())})
	defer fw2.Close()
	obs, err := fw2.Observe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"22/Tcp 198.18.1.1/32": true, "3389/Tcp 198.18.2.0/24": true,
		"22/Tcp 2001:2:0:1::/64": true, "22/Udp 2001:2:0:1::/64": true}
	if len(obs.Grants) != len(want) {
		t.Fatalf("Observe: %d grants, want %d: %+v", len(obs.Grants), len(want), obs.Grants)
	}
	ends := map[string]time.Time{"198.18.1.1/32": st.Grants[0].End, "198.18.2.0/24": st.Grants[1].End, "2001:2:0:1::/64": st.Grants[2].End}
	for _, g := range obs.Grants {
		k := fmt.Sprintf("%d/%s %s", g.Port, g.Protocol, g.Source)
		if !want[k] {
			t.Errorf("unexpected observed grant %s", k)
		}
		if d := g.End.Sub(ends[g.Source.String()]).Abs(); d > 100*time.Millisecond {
			t.Errorf("%s: end off by %v", k, d)
		}
	}
	if len(obs.Guarded) != 3 {
		t.Errorf("Guarded = %v", obs.Guarded)
	}
	ids := Enforced(st.Grants, obs, time.Now(), 100*time.Millisecond)
	if fmt.Sprint(ids) != "[one net v6]" {
		t.Errorf("Enforced = %v, want [one net v6]", ids)
	}

	// Applying the same State again (from the restarted instance) rewrites
	// nothing: every element keeps its original timeout.
	if err := fw2.Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	if after := tb.elements(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("second Apply changed elements:\nbefore %v\nafter  %v", before, after)
	}
}

// elements returns, per allow set, each element's key and original timeout.
func (tb *testbed) elements(t *testing.T) []string {
	t.Helper()
	c, err := nft.New(nft.WithNetNSFd(int(tb.fd.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	o := newObjects()
	var out []string
	for _, id := range allowSets {
		els, err := c.GetSetElements(o.allow[id])
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range els {
			out = append(out, fmt.Sprintf("%s %x-%x %v", id.name(), e.Key, e.KeyEnd, e.Timeout))
		}
	}
	return out
}

// TestKernelOtherTableUntouched: a table of another owner, stricter than JIT
// on 3389, keeps winning and is byte-for-byte unchanged by Apply, expiry and
// Disable.
func TestKernelOtherTableUntouched(t *testing.T) {
	tb := newTestbed(t)
	ctx := context.Background()
	c, err := nft.New(nft.WithNetNSFd(int(tb.fd.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	other := c.AddTable(&nft.Table{Name: "other", Family: nft.TableFamilyINet})
	policy := nft.ChainPolicyAccept
	ch := c.AddChain(&nft.Chain{Name: "in", Table: other, Type: nft.ChainTypeFilter,
		Hooknum: nft.ChainHookInput, Priority: nft.ChainPriorityFilter, Policy: &policy})
	set := &nft.Set{Table: other, Name: "blocked", KeyType: nft.TypeIPAddr}
	if err := c.AddSet(set, []nft.SetElement{{Key: []byte{198, 18, 9, 9}}}); err != nil {
		t.Fatal(err)
	}
	// tcp dport 3389 drop
	c.AddRule(&nft.Rule{Table: other, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(3389)},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	dump := func() string {
		t.Helper()
		rules, err := c.GetRules(other, ch)
		if err != nil {
			t.Fatal(err)
		}
		els, err := c.GetSetElements(set)
		if err != nil {
			t.Fatal(err)
		}
		chains, err := c.ListChainsOfTableFamily(nft.TableFamilyINet)
		if err != nil {
			t.Fatal(err)
		}
		s := fmt.Sprintf("elements %#v\n", els)
		for _, x := range chains {
			if x.Table.Name == "other" {
				s += fmt.Sprintf("chain %s %d %d %d\n", x.Name, *x.Hooknum, *x.Priority, *x.Policy)
			}
		}
		for _, r := range rules {
			s += fmt.Sprintf("rule handle %d position %d flags %d userdata %x\n", r.Handle, r.Position, r.Flags, r.UserData)
			for _, e := range r.Exprs {
				s += fmt.Sprintf("%T %+v\n", e, e)
			}
		}
		if _, err := exec.LookPath("nft"); err == nil {
			out, err := tb.vm.Exec("nft", "-j", "list", "table", "inet", "other")
			if err != nil {
				t.Fatal(err)
			}
			s += string(out)
		}
		return s
	}
	before := dump()

	tb.apply(t, State{Guarded: guarded, Grants: []Grant{
		{Port: 22, Protocol: netrule.Tcp, Source: addrA4, End: time.Now().Add(800 * time.Millisecond)},
		{Port: 3389, Protocol: netrule.Tcp, Source: addrA4, End: time.Now().Add(time.Hour)},
	}})
	tb.assertOpen(t, "A 22 with grant", tb.a, vmForA4, 22)
	tb.assertClosed(t, "A 3389: the other table's drop wins over the grant", tb.a, vmForA4, 3389)
	time.Sleep(time.Second)
	tb.apply(t, State{Guarded: guarded})
	if err := tb.fw.Disable(ctx); err != nil {
		t.Fatal(err)
	}
	if after := dump(); after != before {
		t.Fatalf("table inet other changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if tabs := tb.tables(t); fmt.Sprint(tabs) != "[1 other]" {
		t.Fatalf("tables after Disable = %v, want only inet other", tabs)
	}
}
