package e2e

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/netns"
)

// TestConcurrentSourcesOnOneHost: with --concurrent-sources, A's and B's
// grants on port 22 of one host are open at the same time; without it
// (Azure's behaviour) B's request ends A's grant.
func TestConcurrentSourcesOnOneHost(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: -short (builds the binary, runs real processes)")
	}
	requireHost(t)
	dir := t.TempDir()
	tp := newTopo(t)
	_, url := startServer(t, dir, "server")
	c := setUp(t, dir, url, tp)
	startAgent(t, dir, "agent", url, tp.vm)
	if !waitFor(5*time.Second, openKernel(t, tp.vm).guarded) {
		t.Fatal("the agent did not guard the host within 5s")
	}

	// Default: the newer request ends the older grant.
	request(t, c, tp.a4, "PT5M")
	waitOpen(t, "A", tp.a, tp.vmA4)
	request(t, c, tp.b4, "PT5M")
	waitOpen(t, "B", tp.b, tp.vmB4)
	assertClosed(t, "A after B's request (default policy)", tp.a, tp.vmA4, 22)

	cli(t, url, "policy", "set", vmID, "--port", "22", "--port", "3389", "--concurrent-sources")
	ga := request(t, c, tp.a4, "PT5M")
	gb := request(t, c, tp.b4, "PT5M")
	waitOpen(t, "A (concurrent)", tp.a, tp.vmA4)
	waitOpen(t, "B (concurrent)", tp.b, tp.vmB4)
	if !waitFor(3*time.Second, func() bool { return grantOf(t, c, ga.GrantID).Applied && grantOf(t, c, gb.GrantID).Applied }) {
		t.Fatal("the two concurrent grants do not both show applied")
	}
	// A's newer request ends only A's older grant.
	request(t, c, tp.a4, "PT5M")
	waitOpen(t, "A again", tp.a, tp.vmA4)
	assertOpen(t, "B beside A's newer grant", tp.b, tp.vmB4, 22)
}

var manyGrants = flag.Int("grants", 10000, "concurrent grants on one host for BenchmarkConnectWithManyGrants")

// vmID2 is the second host of BenchmarkConnectWithManyGrants.
const vmID2 = "/subscriptions/00000000-0000-0000-0000-0000000000e2/resourceGroups/e2e/providers/Drawbridge.Hosts/hosts/host2"

// BenchmarkConnectWithManyGrants: TCP connect latency to port 22 of a host
// holding -grants concurrent grants (each from its own source, requested
// through the API with --concurrent-sources) against a twin host holding
// one grant, measured interleaved (one connect to each in turn) so that
// load on the machine hits both alike; the same is measured before the
// grants are added, to show the twins start equal. Run as root:
//
//	go test -run '^$' -bench ConnectWithManyGrants -benchtime 1x ./internal/e2e/ -args -grants 10000
func BenchmarkConnectWithManyGrants(b *testing.B) {
	requireHost(b)
	n := *manyGrants
	if n < 2 || n > 60000 {
		b.Fatalf("-grants %d: want 2..60000", n)
	}
	for range b.N {
		dir := b.TempDir()
		small, big := newTopo(b), newTopo(b)
		_, url := startServer(b, dir, "server")
		c := setUpTwins(b, dir, url, small, big)
		startAgentFor(b, dir, "agent-small", url, vmID, small.vm)
		startAgentFor(b, dir, "agent-big", url, vmID2, big.vm)
		ks, kb := openKernel(b, small.vm), openKernel(b, big.vm)
		if !waitFor(5*time.Second, ks.guarded) || !waitFor(5*time.Second, kb.guarded) {
			b.Fatal("the agents did not guard the hosts within 5s")
		}
		ctx := context.Background()
		for _, h := range []struct {
			vm string
			tp *topo
		}{{vmID, small}, {vmID2, big}} {
			if _, err := c.Request(ctx, api.SimpleRequest{VM: h.vm, Ports: []int{22}, Duration: "PT3H", Source: h.tp.a4.String()}); err != nil {
				b.Fatal(err)
			}
			if !waitFor(3*time.Second, func() bool { return connects(h.tp.a, h.tp.vmA4, 22, 100*time.Millisecond) }) {
				b.Fatal("A's grant never opened")
			}
		}
		const rounds = 2000
		s0, b0 := connectTwins(b, small, big, rounds)

		began := time.Now()
		requestMany(b, c, vmID2, n-1)
		took := time.Since(began)
		if !waitFor(2*time.Minute, func() bool {
			st, err := kb.k.Observe(ctx)
			return err == nil && len(st.Grants) >= n
		}) {
			b.Fatalf("the kernel does not hold %d grants within 2 minutes of the last request", n)
		}
		s1, b1 := connectTwins(b, small, big, rounds)
		b.ReportMetric(float64(pct(b0, 50))/float64(pct(s0, 50)), "before-p50-ratio")
		b.ReportMetric(float64(pct(b1, 50))/float64(pct(s1, 50)), "after-p50-ratio")
		b.ReportMetric(ms(pct(b1, 50)), "connect-p50-ms")
		b.ReportMetric(took.Seconds(), "api-requests-s")
		b.Logf("%d grants requested through the API in %v (%.0f/s)", n-1, took.Round(time.Millisecond), float64(n-1)/took.Seconds())
		b.Logf("before: host with 1 grant %s; twin with 1 grant %s", summary(s0), summary(b0))
		b.Logf("after:  host with 1 grant %s; twin with %d grants %s", summary(s1), n, summary(b1))
	}
}

// setUpTwins loads two hosts (vmID on small, vmID2 on big) with port 22
// and 3389 guarded and concurrent sources allowed.
func setUpTwins(b *testing.B, dir, url string, small, big *topo) *client.Client {
	b.Helper()
	inv := fmt.Sprintf(`{"vms":[{"id":%q,"name":"host1","cloud":"host","provider":"nftables","addresses":[%q]},
	  {"id":%q,"name":"host2","cloud":"host","provider":"nftables","addresses":[%q]}]}`, vmID, small.vmA4, vmID2, big.vmA4)
	invPath := filepath.Join(dir, "inventory.json")
	if err := os.WriteFile(invPath, []byte(inv), 0o600); err != nil {
		b.Fatal(err)
	}
	cli(b, url, "inventory", "apply", "-f", invPath)
	for _, vm := range []string{vmID, vmID2} {
		cli(b, url, "policy", "set", vm, "--port", "22", "--port", "3389", "--concurrent-sources")
	}
	c, err := client.New(url, "")
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// startAgentFor is startAgent for any VM, with its own state file.
func startAgentFor(t testing.TB, dir, name, url, vm string, ns *netns.NS) *proc {
	t.Helper()
	p, sc := startProc(t, name, filepath.Join(dir, name+".log"), "agent", "--server", url, "--vm", vm, "--netns", ns.Path(),
		"--max-backoff", "500ms", "--state-file", filepath.Join(dir, name+"-state.json"))
	go func() {
		for sc.Scan() {
		}
	}()
	return p
}

// connectTwins times n TCP connects (handshake only) from each twin's A to
// its host's port 22, alternating between the twins.
func connectTwins(b *testing.B, small, big *topo, n int) (s, l []time.Duration) {
	b.Helper()
	one := func(tp *topo) time.Duration {
		var took time.Duration
		if err := tp.a.Do(func() error {
			d := net.Dialer{Timeout: time.Second}
			t0 := time.Now()
			c, err := d.Dial("tcp", hostPort(tp.vmA4, 22))
			if err != nil {
				return err
			}
			took = time.Since(t0)
			return c.Close()
		}); err != nil {
			b.Fatal(err)
		}
		return took
	}
	for range n {
		s = append(s, one(small))
		l = append(l, one(big))
	}
	slices.Sort(s)
	slices.Sort(l)
	return s, l
}

// requestMany requests port 22 of vm for n distinct sources from
// 198.19.0.0/16 through the API, 8 at a time.
func requestMany(b *testing.B, c *client.Client, vm string, n int) {
	b.Helper()
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	base := netip.MustParseAddr("198.19.0.0")
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				a := base.As4()
				a[2], a[3] = byte(i>>8), byte(i)
				src := netip.AddrFrom4(a)
				if _, err := c.Request(context.Background(), api.SimpleRequest{VM: vm, Ports: []int{22}, Duration: "PT3H", Source: src.String()}); err != nil {
					if failed.Add(1) == 1 {
						b.Errorf("request from %v: %v", src, err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		b.Fatalf("%d of %d requests failed", failed.Load(), n)
	}
}
