package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/testbin"
)

// Run as root, comparing a binary built elsewhere (e.g. main's) with this
// tree's:
//
//	go test -run '^$' -bench CLIOpen -benchtime 1x ./internal/e2e/ -args -old /tmp/drawbridge-main
//
// or with more builds (-also client=/tmp/db-client,static=/tmp/db-static:
// at most 1000 requests in all, arms × -rounds × -per-round).
//
// It measures the figure a user sees: `drawbridge request host1 --port 22
// ...` exec'd → first successful TCP connect from client namespace A to the
// agent-guarded VM namespace, through a real server (SQLite) and agent. The
// arms run interleaved (order alternating per round) against the same
// server: "old" (-old), "new" (this tree) and, as the floor, "api" (the same
// POST from this Go process by resource ID, no exec). It also times
// `drawbridge version` exec → exit, interleaved the same way.
var (
	oldBin    = flag.String("old", "", "a drawbridge binary to compare with this tree's (CLIOpen)")
	alsoBin   = flag.String("also", "", "more drawbridge binaries to compare, comma-separated [NAME=]PATH, e.g. static=/tmp/db-static,client=/tmp/db-client (CLIOpen)")
	cliRounds = flag.Int("rounds", 16, "interleaved rounds (CLIOpen)")
	perRound  = flag.Int("per-round", 8, "samples per arm per round (CLIOpen)")
)

type arm struct {
	name string
	bin  string // "" for the in-process API call
	srcF string // the request command's flag for the source address
	vm   string // the API arms' VM: its resource ID or, as the CLI sends it, its name
}

func BenchmarkCLIOpen(b *testing.B) {
	requireHost(b)
	arms := []arm{{name: "new", bin: testbin.Drawbridge(b)}}
	if *oldBin != "" {
		arms = append([]arm{{name: "old", bin: *oldBin}}, arms...)
	}
	for i, spec := range strings.Split(*alsoBin, ",") {
		if spec == "" {
			continue
		}
		name, path, ok := strings.Cut(spec, "=")
		if !ok {
			name, path = "also", spec
			if i > 0 {
				name = fmt.Sprintf("also%d", i+1)
			}
		}
		arms = append(arms, arm{name: name, bin: path})
	}
	for i := range arms {
		arms[i].srcF = sourceFlag(b, arms[i].bin)
	}
	// The floor: the same POST from this process, by resource ID and, as
	// the CLI sends it, by name (resolved by the server).
	arms = append(arms, arm{name: "api", vm: vmID}, arm{name: "api-name", vm: "host1"})
	dir := b.TempDir()
	for range b.N {
		open, version := measureCLI(b, dir, arms)
		// Printed, not b.Logf: the testing package keeps only the first
		// 10 lines of a benchmark's log, fewer than 5 arms need.
		for _, a := range arms {
			fmt.Printf("%-16s exec → port open, %d requests: %s\n", a.name, len(open[a.name]), summary(open[a.name]))
			b.ReportMetric(ms(pct(open[a.name], 50)), a.name+"-open-p50-ms")
			b.ReportMetric(ms(pct(open[a.name], 99)), a.name+"-open-p99-ms")
			if a.bin != "" {
				fmt.Printf("%-16s version exec → exit, %d runs: %s\n", a.name, len(version[a.name]), summary(version[a.name]))
				b.ReportMetric(ms(pct(version[a.name], 50)), a.name+"-version-p50-ms")
			}
		}
		if *oldBin != "" {
			b.Logf("p50 old/new: open %.2fx, version %.2fx",
				float64(pct(open["old"], 50))/float64(pct(open["new"], 50)),
				float64(pct(version["old"], 50))/float64(pct(version["new"], 50)))
		}
	}
}

// sourceFlag finds the request command's flag for the requester's address
// in bin's help (it may be renamed between versions).
func sourceFlag(b *testing.B, bin string) string {
	out, err := exec.Command(bin, "request", "--help").CombinedOutput()
	if err != nil {
		b.Fatalf("%s request --help: %v\n%s", bin, err, out)
	}
	for _, f := range []string{"--source-address", "--source-ip", "--from", "--source"} {
		if strings.Contains(string(out), "  "+f+" ") || strings.Contains(string(out), ", "+f+" ") {
			return f
		}
	}
	b.Fatalf("%s request --help names no source-address flag:\n%s", bin, out)
	return ""
}

func measureCLI(b *testing.B, dir string, arms []arm) (open, version map[string][]time.Duration) {
	b.Helper()
	tp := newTopo(b)
	rounds, per := *cliRounds, *perRound
	pool := addPool(b, tp, rounds*per*len(arms))
	_, url := startServer(b, dir, "cli-bench-server")
	c := setUp(b, dir, url, tp)
	startAgent(b, dir, "cli-bench-agent", url, tp.vm)
	kern := openKernel(b, tp.vm)
	if !waitFor(5*time.Second, func() bool {
		st, err := kern.k.Observe(context.Background())
		return err == nil && len(st.Guarded) == 2
	}) {
		b.Fatal("the agent did not enable JIT within 5s")
	}
	// The CLI reads no saved login: an empty config directory.
	env := append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "HOME="+dir,
		"DRAWBRIDGE_SERVER="+url, "DRAWBRIDGE_CONTEXT=", "DRAWBRIDGE_TOKEN=")
	ctx := context.Background()
	open, version = map[string][]time.Duration{}, map[string][]time.Duration{}
	next := 0
	for r := range rounds {
		order := arms
		if r%2 == 1 {
			order = reversed(arms)
		}
		for _, a := range order {
			for range per {
				src := pool[next]
				next++
				took, err := openFrom(tp.a, src, tp.vmA4, 22, func() time.Time {
					t0 := time.Now()
					if a.bin == "" {
						if _, err := c.Request(ctx, api.SimpleRequest{VM: a.vm, Ports: []int{22}, Duration: "1h", Source: src.String()}); err != nil {
							b.Errorf("api request: %v", err)
						}
						return t0
					}
					cmd := exec.Command(a.bin, "request", "host1", "--port", "22", "--duration", "1h", a.srcF, src.String())
					cmd.Env = env
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Errorf("%s request: %v\n%s", a.name, err, out)
					}
					return t0
				})
				if err != nil {
					b.Fatalf("%s round %d: %v", a.name, r, err)
				}
				open[a.name] = append(open[a.name], took)
			}
			if a.bin != "" {
				version[a.name] = append(version[a.name], timeVersion(b, a.bin, env, per)...)
			}
		}
	}
	return open, version
}

// timeVersion runs `bin version` n times and returns each exec → exit.
func timeVersion(b *testing.B, bin string, env []string, n int) []time.Duration {
	var ds []time.Duration
	for range n {
		cmd := exec.Command(bin, "version")
		cmd.Env = env
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s version: %v\n%s", bin, err, out)
		}
		ds = append(ds, time.Since(t0))
	}
	return ds
}

func reversed(as []arm) []arm {
	out := make([]arm, len(as))
	for i, a := range as {
		out[len(as)-1-i] = a
	}
	return out
}
