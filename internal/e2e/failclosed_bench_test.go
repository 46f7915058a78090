package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	nft "github.com/google/nftables"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/provider/nftables"
)

var driftSamples = flag.Int("drift-samples", 50, "repairs and boots measured by BenchmarkDriftRepair and BenchmarkBootToGuarded")

// watchVM reports every nftables transaction on the VM's drawbridge table
// (by nft and by the agent: both are other processes) with its arrival time.
type stamped struct {
	c  nftables.Change
	at time.Time
}

func watchVM(b *testing.B, k *kernel) <-chan stamped {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	ch := make(chan stamped, 1024)
	ready := make(chan struct{})
	go func() {
		_ = nftables.Watch(ctx, int(k.f.Fd()), ready, func(c nftables.Change) {
			ch <- stamped{c, time.Now()}
		})
	}()
	<-ready
	return ch
}

// next waits for the next transaction by comm (bounded).
func next(b *testing.B, ch <-chan stamped, comm string) time.Time {
	b.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-ch:
			if s.c.Comm == comm {
				return s.at
			}
		case <-deadline:
			b.Fatalf("no transaction by %s within 5s", comm)
		}
	}
}

// BenchmarkDriftRepair: time from committing a foreign transaction that
// removes the drawbridge table (delete table; flush ruleset followed by a
// new table, as `systemctl restart nftables` does with Debian's
// /etc/nftables.conf) to the kernel's notification of the agent's
// transaction that restores it. The foreign transaction is sent over
// netlink by the benchmark process itself (t0 is taken just before it is
// sent, so nft's start-up is not counted); the agent is a separate process.
// Run as root:
//
//	go test -run '^$' -bench DriftRepair -benchtime 1x ./internal/e2e/
func BenchmarkDriftRepair(b *testing.B) {
	requireHost(b)
	for range b.N {
		dir := b.TempDir()
		tp := newTopo(b)
		_, url := startServer(b, dir, "server")
		c := setUp(b, dir, url, tp)
		startAgent(b, dir, "agent", url, tp.vm)
		kern := openKernel(b, tp.vm)
		if !waitFor(5*time.Second, kern.guarded) {
			b.Fatal("the agent did not guard the host within 5s")
		}
		if _, err := c.Request(context.Background(), api.SimpleRequest{VM: vmID, Ports: []int{22}, Duration: "PT1H", Source: tp.a4.String()}); err != nil {
			b.Fatal(err)
		}
		ch := watchVM(b, kern)
		conn, err := nft.New(nft.WithNetNSFd(int(kern.f.Fd())))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.CloseLasting()
		for _, tc := range []struct {
			name string
			tx   func()
		}{
			{"delete-table", func() {
				conn.DelTable(&nft.Table{Name: "drawbridge", Family: nft.TableFamilyINet})
			}},
			{"flush-ruleset", func() {
				conn.FlushRuleset()
				conn.AddTable(&nft.Table{Name: "filter", Family: nft.TableFamilyINet})
			}},
		} {
			var ds []time.Duration
			for range *driftSamples {
				tc.tx()
				t0 := time.Now()
				if err := conn.Flush(); err != nil {
					b.Fatal(err)
				}
				t1 := next(b, ch, "drawbridge")
				ds = append(ds, t1.Sub(t0))
				if !kern.guarded() {
					b.Fatalf("%s: not guarded after the repair", tc.name)
				}
				time.Sleep(20 * time.Millisecond)
			}
			slices.Sort(ds)
			b.ReportMetric(ms(pct(ds, 50)), tc.name+"-p50-ms")
			b.ReportMetric(ms(ds[len(ds)-1]), tc.name+"-max-ms")
			b.Logf("%s → restored, %d repairs: %s", tc.name, len(ds), summary(ds))
		}
	}
}

// BenchmarkBootToGuarded: the host after a reboot with the server away
// (no table, no server, a state file): time from starting the agent
// process to its first transaction, the one that installs the guard.
//
//	go test -run '^$' -bench BootToGuarded -benchtime 1x ./internal/e2e/
func BenchmarkBootToGuarded(b *testing.B) {
	requireHost(b)
	requireNft(b)
	for range b.N {
		dir := b.TempDir()
		tp := newTopo(b)
		srv, url := startServer(b, dir, "server")
		setUp(b, dir, url, tp)
		ag := startAgent(b, dir, "agent", url, tp.vm)
		kern := openKernel(b, tp.vm)
		if !waitFor(5*time.Second, kern.guarded) {
			b.Fatal("the agent did not guard the host within 5s")
		}
		if !waitFor(5*time.Second, func() bool { _, err := os.Stat(filepath.Join(dir, "agent-state.json")); return err == nil }) {
			b.Fatal("no state file")
		}
		ag.kill()
		srv.kill()
		ch := watchVM(b, kern)
		var ds []time.Duration
		for i := range *driftSamples {
			nftIn(b, tp.vm, "delete", "table", "inet", "drawbridge")
			next(b, ch, "nft")
			t0 := time.Now()
			ag = startAgent(b, dir, fmt.Sprintf("agent-%d", i), url, tp.vm)
			t1 := next(b, ch, "drawbridge")
			ds = append(ds, t1.Sub(t0))
			if !kern.guarded() {
				b.Fatal("not guarded after the agent's first transaction")
			}
			ag.kill()
		}
		slices.Sort(ds)
		b.ReportMetric(ms(pct(ds, 50)), "boot-p50-ms")
		b.ReportMetric(ms(ds[len(ds)-1]), "boot-max-ms")
		b.Logf("agent start → guard installed (server down, table deleted), %d boots: %s", len(ds), summary(ds))
	}
}
