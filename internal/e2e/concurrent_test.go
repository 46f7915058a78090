package e2e

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
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

// BenchmarkConnectWithManyGrants: TCP connect latency from a granted source
// to port 22 of one host with only its own grant, then with -grants
// concurrent grants (each from its own source, requested through the API
// with --concurrent-sources), measured in rounds that alternate... the
// table cannot shrink cheaply, so: empty, full, and the ratio. Run as root:
//
//	go test -run '^$' -bench ConnectWithManyGrants -benchtime 1x ./internal/e2e/
func BenchmarkConnectWithManyGrants(b *testing.B) {
	requireHost(b)
	n := *manyGrants
	if n < 2 || n > 60000 {
		b.Fatalf("-grants %d: want 2..60000", n)
	}
	for range b.N {
		dir := b.TempDir()
		tp := newTopo(b)
		_, url := startServer(b, dir, "server")
		c := setUp(b, dir, url, tp)
		cli(b, url, "policy", "set", vmID, "--port", "22", "--port", "3389", "--concurrent-sources")
		startAgent(b, dir, "agent", url, tp.vm)
		kern := openKernel(b, tp.vm)
		if !waitFor(5*time.Second, kern.guarded) {
			b.Fatal("the agent did not guard the host within 5s")
		}
		ctx := context.Background()
		if _, err := c.Request(ctx, api.SimpleRequest{VM: vmID, Ports: []int{22}, Duration: "PT3H", Source: tp.a4.String()}); err != nil {
			b.Fatal(err)
		}
		if !waitFor(3*time.Second, func() bool { return connects(tp.a, tp.vmA4, 22, 100*time.Millisecond) }) {
			b.Fatal("A's grant never opened")
		}
		const rounds = 1000
		empty := connectLatency(b, tp.a, tp.vmA4, rounds)

		began := time.Now()
		requestMany(b, c, n-1)
		took := time.Since(began)
		if !waitFor(time.Minute, func() bool {
			st, err := kern.k.Observe(ctx)
			return err == nil && len(st.Grants) >= n
		}) {
			b.Fatalf("the kernel does not hold %d grants within a minute", n)
		}
		full := connectLatency(b, tp.a, tp.vmA4, rounds)
		e50, f50 := pct(empty, 50), pct(full, 50)
		b.ReportMetric(ms(e50), "connect-p50-1grant-ms")
		b.ReportMetric(ms(f50), fmt.Sprintf("connect-p50-%dgrants-ms", n))
		b.ReportMetric(float64(f50)/float64(e50), "full/empty-p50")
		b.ReportMetric(took.Seconds(), "api-requests-s")
		b.Logf("%d grants requested through the API in %v; connect with 1 grant: %s; with %d grants: %s",
			n-1, took.Round(time.Millisecond), summary(empty), n, summary(full))
	}
}

// connectLatency times n TCP connects (handshake only) from ns to a:22.
func connectLatency(b *testing.B, ns *netns.NS, a netip.Addr, n int) []time.Duration {
	b.Helper()
	var out []time.Duration
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: time.Second}
		for range n {
			t0 := time.Now()
			c, err := d.Dial("tcp", hostPort(a, 22))
			if err != nil {
				return err
			}
			out = append(out, time.Since(t0))
			c.Close()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// requestMany requests port 22 for n distinct sources from 198.19.0.0/16
// through the API, 8 at a time.
func requestMany(b *testing.B, c *client.Client, n int) {
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
				if _, err := c.Request(context.Background(), api.SimpleRequest{VM: vmID, Ports: []int{22}, Duration: "PT3H", Source: src.String()}); err != nil {
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
