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

// BenchmarkDriftRepair: time from a foreign transaction that removes the
// drawbridge table (nft delete table; nft -f a file starting with flush
// ruleset, as `systemctl restart nftables` does) to the agent's
// transaction that restores it, both as the kernel announces them on
// NFNLGRP_NFTABLES (a loaded machine may deliver both at once, which
// understates it), and, as an upper bound, from starting the nft process
// to the agent's notification. Run as root:
//
//	go test -run '^$' -bench DriftRepair -benchtime 1x ./internal/e2e/
func BenchmarkDriftRepair(b *testing.B) {
	requireHost(b)
	requireNft(b)
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
		conf := filepath.Join(dir, "nftables.conf")
		if err := os.WriteFile(conf, []byte("flush ruleset\ntable inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter;\n\t}\n}\n"), 0o600); err != nil {
			b.Fatal(err)
		}
		ch := watchVM(b, kern)
		for _, tc := range []struct {
			name string
			args []string
		}{
			{"delete-table", []string{"delete", "table", "inet", "drawbridge"}},
			{"flush-ruleset-file", []string{"-f", conf}},
		} {
			var ds, us []time.Duration
			for range *driftSamples {
				began := time.Now()
				nftIn(b, tp.vm, tc.args...)
				t0 := next(b, ch, "nft")
				t1 := next(b, ch, "drawbridge")
				ds = append(ds, t1.Sub(t0))
				us = append(us, t1.Sub(began))
				if !kern.guarded() {
					b.Fatalf("%s: not guarded after the repair", tc.name)
				}
				time.Sleep(20 * time.Millisecond)
			}
			slices.Sort(ds)
			slices.Sort(us)
			b.ReportMetric(ms(pct(ds, 50)), tc.name+"-p50-ms")
			b.ReportMetric(ms(ds[len(ds)-1]), tc.name+"-max-ms")
			b.ReportMetric(ms(pct(us, 50)), tc.name+"-from-exec-p50-ms")
			b.ReportMetric(ms(us[len(us)-1]), tc.name+"-from-exec-max-ms")
			b.Logf("%s → restored, %d repairs, between the two notifications: %s", tc.name, len(ds), summary(ds))
			b.Logf("%s → restored, from starting the nft process (an upper bound: includes nft's start-up): %s", tc.name, summary(us))
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
