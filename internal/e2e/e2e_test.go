package e2e

import (
	"context"
	"encoding/json"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/netns"
)

const (
	closedWait = 300 * time.Millisecond // a dropped SYN: no connection within this
	openWait   = 2 * time.Second
)

func assertOpen(t *testing.T, what string, ns *netns.NS, a netip.Addr, port int) {
	t.Helper()
	if !connects(ns, a, port, openWait) {
		t.Fatalf("%s: %s cannot connect to %s, want it to", what, ns.Name(), hostPort(a, port))
	}
}

func assertClosed(t *testing.T, what string, ns *netns.NS, a netip.Addr, port int) {
	t.Helper()
	if connects(ns, a, port, closedWait) {
		t.Fatalf("%s: %s connects to %s, want it closed", what, ns.Name(), hostPort(a, port))
	}
}

// request asks for port 22 from src for dur through the API.
func request(t *testing.T, c *client.Client, src netip.Addr, dur string) api.RequestPort {
	t.Helper()
	r, err := c.Request(context.Background(), api.SimpleRequest{VM: vmID, Ports: []int{22}, Duration: dur, Source: src.String()})
	if err != nil {
		t.Fatalf("request %s for %s: %v", src, dur, err)
	}
	return r.VirtualMachines[0].Ports[0]
}

// waitOpen waits (bounded) until ns connects to a:22.
func waitOpen(t *testing.T, what string, ns *netns.NS, a netip.Addr) time.Duration {
	t.Helper()
	began := time.Now()
	if _, err := firstConnect(ns, a, 22, 20*time.Millisecond, began.Add(3*time.Second), nil); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return time.Since(began)
}

// closesAt asserts that new connections still succeed shortly before end and
// fail from shortly after it; it returns how long after end the first
// refused connect started.
func closesAt(t *testing.T, what string, ns *netns.NS, a netip.Addr, end time.Time) time.Duration {
	t.Helper()
	if until := time.Until(end) - 300*time.Millisecond; until > 0 {
		time.Sleep(until)
		if !connects(ns, a, 22, time.Second) {
			t.Fatalf("%s: closed already 300ms before the end time", what)
		}
	}
	at, err := firstRefusal(ns, a, 22, 50*time.Millisecond, end.Add(3*time.Second))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	late := at.Sub(end)
	if late < -20*time.Millisecond {
		t.Fatalf("%s: closed %v before the end time", what, -late)
	}
	if late > 500*time.Millisecond {
		t.Fatalf("%s: closed %v after the end time, want within 500ms", what, late)
	}
	// And it stays closed.
	assertClosed(t, what+" (after the end)", ns, a, 22)
	return late
}

func grantOf(t *testing.T, c *client.Client, id string) api.RequestPort {
	t.Helper()
	g, err := c.Grant(context.Background(), vmID, id)
	if err != nil {
		t.Fatal(err)
	}
	return api.RequestPort{GrantID: g.ID, Applied: g.Applied, ProviderError: g.ProviderError, EndTimeUtc: g.EndTime}
}

// TestAgentEndToEnd runs a real server and a real agent for a host in a
// network namespace and checks every promise of the nftables path with
// real TCP connects.
func TestAgentEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: -short (builds the binary, runs real processes)")
	}
	requireHost(t)
	dir := t.TempDir()
	tp := newTopo(t)
	kern := openKernel(t, tp.vm)

	// Another owner's table in the VM namespace must come out unchanged.
	var otherBefore string
	if _, err := exec.LookPath("nft"); err == nil {
		if _, err := tp.vm.Exec("nft", "add table inet hostfw; add chain inet hostfw input { type filter hook input priority 0; policy accept; }; add rule inet hostfw input tcp dport 9999 counter drop"); err != nil {
			t.Fatal(err)
		}
		out, err := tp.vm.Exec("nft", "-a", "list", "table", "inet", "hostfw")
		if err != nil {
			t.Fatal(err)
		}
		otherBefore = string(out)
	} else {
		t.Log("nft binary not found: not checking that another table stays byte-for-byte unchanged")
	}

	srv, url := startServer(t, dir, "server1")
	c := setUp(t, dir, url, tp)
	agent := startAgent(t, dir, "agent1", url, tp.vm)

	// JIT enabled: the agent puts the guarded ports into the kernel.
	if !waitFor(5*time.Second, func() bool {
		st, err := kern.k.Observe(context.Background())
		return err == nil && len(st.Guarded) == 2
	}) {
		t.Fatalf("the agent did not enable JIT (guard 22 and 3389) within 5s; tables %v", kern.tables(t))
	}

	// Before any grant: 22 closed for A and B, 8080 open for both.
	assertClosed(t, "before any grant", tp.a, tp.vmA4, 22)
	assertClosed(t, "before any grant", tp.b, tp.vmB4, 22)
	assertClosed(t, "before any grant", tp.a, tp.vmA4, 3389)
	assertOpen(t, "unguarded port", tp.a, tp.vmA4, 8080)
	assertOpen(t, "unguarded port", tp.b, tp.vmB4, 8080)

	// A's request, through the CLI: A connects to 22, B does not, 3389 stays closed.
	out := cli(t, url, "request", vmID, "--port", "22", "--duration", "3s", "--source", tp.a4.String(), "-o", "json")
	g1 := decodeRequest(t, out)
	took := waitOpen(t, "after A's request", tp.a, tp.vmA4)
	t.Logf("A's request: port open for A %v after the CLI returned", took)
	assertClosed(t, "B during A's grant", tp.b, tp.vmB4, 22)
	assertClosed(t, "3389 during A's grant on 22", tp.a, tp.vmA4, 3389)
	if !waitFor(3*time.Second, func() bool { return grantOf(t, c, g1.GrantID).Applied }) {
		t.Fatalf("grant %s never shows applied: %+v", g1.GrantID, grantOf(t, c, g1.GrantID))
	}
	// A connection opened before the end time lives on after it.
	conn, err := dial(tp.a, tp.vmA4, 22, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	late := closesAt(t, "A's grant", tp.a, tp.vmA4, g1.EndTimeUtc)
	t.Logf("A's grant closed for new connections %v after its end time", late)
	if err := netns.RoundTrip(conn, "still here after the end", time.Second); err != nil {
		t.Fatalf("the connection opened before the end time broke after it: %v", err)
	}
	conn.Close()

	// The server killed with SIGKILL during a grant: the port still closes on time.
	g2 := request(t, c, tp.a4, "3s")
	waitOpen(t, "before killing the server", tp.a, tp.vmA4)
	srv.kill()
	assertOpen(t, "server dead, grant active", tp.a, tp.vmA4, 22)
	late = closesAt(t, "grant while the server is dead", tp.a, tp.vmA4, g2.EndTimeUtc)
	t.Logf("server killed: the grant closed %v after its end time", late)
	assertClosed(t, "server dead, JIT still on for B", tp.b, tp.vmB4, 22)

	// Server back (same database); the agent reconnects on its own.
	_, url = startServerOn(t, dir, "server2", strings.TrimPrefix(url, "http://"))
	c, err = client.New(url, "")
	if err != nil {
		t.Fatal(err)
	}

	// The agent restarted during a grant: it keeps working and still ends on time.
	g3 := request(t, c, tp.a4, "4s")
	waitOpen(t, "before restarting the agent", tp.a, tp.vmA4)
	if !waitFor(3*time.Second, func() bool { return grantOf(t, c, g3.GrantID).Applied }) {
		t.Fatalf("grant %s (after the server restart) never shows applied", g3.GrantID)
	}
	agent.kill()
	assertOpen(t, "agent dead, grant active", tp.a, tp.vmA4, 22)
	agent = startAgent(t, dir, "agent2", url, tp.vm)
	if !waitFor(3*time.Second, func() bool { return strings.Contains(agent.logText(), "msg=applied") }) {
		t.Fatalf("the restarted agent applied nothing within 3s")
	}
	assertOpen(t, "agent restarted, grant active", tp.a, tp.vmA4, 22)
	assertClosed(t, "agent restarted, B", tp.b, tp.vmB4, 22)
	late = closesAt(t, "grant across an agent restart", tp.a, tp.vmA4, g3.EndTimeUtc)
	t.Logf("agent restarted: the grant closed %v after its end time", late)

	// Revoke closes at once.
	g4 := request(t, c, tp.a4, "1m")
	waitOpen(t, "before revoke", tp.a, tp.vmA4)
	revokedAt := time.Now()
	cli(t, url, "revoke", g4.GrantID)
	at, err := firstRefusal(tp.a, tp.vmA4, 22, 50*time.Millisecond, revokedAt.Add(2*time.Second))
	if err != nil {
		t.Fatalf("after revoke: %v", err)
	}
	t.Logf("revoke: closed %v after the revoke call started", at.Sub(revokedAt))
	assertClosed(t, "after revoke", tp.a, tp.vmA4, 22)

	// IPv6 behaves the same.
	g5 := request(t, c, tp.a6, "3s")
	waitOpen(t, "IPv6 grant", tp.a, tp.vmA6)
	assertClosed(t, "IPv6 grant, B", tp.b, tp.vmB6, 22)
	assertClosed(t, "IPv6 grant for A, A over IPv4", tp.a, tp.vmA4, 22)
	assertClosed(t, "IPv6 grant, 3389", tp.a, tp.vmA6, 3389)
	if !waitFor(3*time.Second, func() bool { return grantOf(t, c, g5.GrantID).Applied }) {
		t.Fatalf("IPv6 grant never shows applied")
	}
	conn6, err := dial(tp.a, tp.vmA6, 22, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn6.Close()
	late = closesAt(t, "IPv6 grant", tp.a, tp.vmA6, g5.EndTimeUtc)
	t.Logf("IPv6 grant closed %v after its end time", late)
	if err := netns.RoundTrip(conn6, "v6 still here", time.Second); err != nil {
		t.Fatalf("the IPv6 connection opened before the end time broke after it: %v", err)
	}

	// Disabling JIT removes the table; unguarded and formerly guarded ports are open.
	cli(t, url, "policy", "delete", vmID)
	if !waitFor(3*time.Second, func() bool {
		return !slices.ContainsFunc(kern.tables(t), func(s string) bool { return strings.HasSuffix(s, " drawbridge") })
	}) {
		t.Fatalf("after disabling JIT the drawbridge table is still there: %v", kern.tables(t))
	}
	assertOpen(t, "JIT disabled", tp.b, tp.vmB4, 22)
	if otherBefore != "" {
		out, err := tp.vm.Exec("nft", "-a", "list", "table", "inet", "hostfw")
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != otherBefore {
			t.Fatalf("another owner's table changed:\nbefore:\n%s\nafter:\n%s", otherBefore, out)
		}
	}
}

func decodeRequest(t *testing.T, out string) api.RequestPort {
	t.Helper()
	var r api.RequestResource
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("request output is not JSON: %v\n%s", err, out)
	}
	if len(r.VirtualMachines) != 1 || len(r.VirtualMachines[0].Ports) != 1 {
		t.Fatalf("request output: %s", out)
	}
	return r.VirtualMachines[0].Ports[0]
}
