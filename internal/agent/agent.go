// Package agent is the host agent's reconcile loop: it keeps the host's
// nftables JIT table equal to what the drawbridge server holds for its VM,
// and keeps it closed when the server is away, at boot, and when someone
// else changes the firewall.
//
// # How it works
//
//   - Boot: before contacting the server it reads its state file (the last
//     snapshot it applied, see StateFile) and the kernel's table, and
//     installs the guard at once: every port guarded in the file, in
//     Config.GuardPorts or already in the kernel is denied; grants already
//     in the kernel keep working (their kernel timeouts still close them on
//     time). The file's grants are not opened yet: if the server answers,
//     its snapshot decides (so a stale file never reopens what the server
//     has since closed); only once the server is found unreachable (a
//     failed connection, or no snapshot within OfflineGrace) does the agent
//     add the file's grants whose end time is still in the future. With no
//     state file, no GuardPorts and nothing in the kernel it has nothing
//     to guard, and says so at ERROR level.
//   - It streams GET /drawbridge/v1/agent/stream?vm=ID, an NDJSON stream
//     whose first object is the VM's full snapshot; every change on the
//     server sends a new full snapshot. Each snapshot is applied in one
//     netlink transaction as soon as it arrives (no timer on the path), then
//     written to the state file (atomically, 0600). A server snapshot with no
//     guarded port and no grant disables JIT (the table is deleted); a boot
//     or offline state never deletes the table.
//   - Drift: Config.Watch (nftables.Watch) pushes every transaction another
//     process commits on the drawbridge table (a `flush ruleset`, a
//     restart of nftables.service, a deleted table, chain, rule or element).
//     The agent then reads the table and re-applies what it enforces, in
//     milliseconds; it records the repair in its status and state file
//     and reports it to the server, which audits it (operation "drift") and
//     sends a webhook event.
//   - After each apply it POSTs /drawbridge/v1/agent/report with the
//     snapshot's version and the IDs of the grants it enforces, or the
//     error. A failed apply is retried with backoff until it succeeds or a
//     newer target replaces it.
//   - If the stream ends, fails, or carries nothing for HeartbeatTimeout, it
//     reconnects with capped, jittered backoff (at most MaxBackoff, 3 s by
//     default) and, while waiting, reconnects as soon as the server accepts
//     TCP connections again. Meanwhile the kernel keeps enforcing the last
//     applied state, and each grant still ends at its end time.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
	"github.com/drawbridge/drawbridge/internal/provider/nftables"
)

// Config configures an agent.
type Config struct {
	Server   string // base URL of the drawbridge server
	Token    string // bearer token, may be empty
	VM       string // the VM's resource ID
	Firewall nftables.Firewall
	// HTTP is the client for the stream and reports (default: a client
	// without overall timeout; the stream is long-lived).
	HTTP   *http.Client
	Logger *slog.Logger
	// HeartbeatTimeout: a stream silent this long is considered dead
	// (default 30s, three server heartbeats).
	HeartbeatTimeout time.Duration
	// MinBackoff and MaxBackoff bound the reconnect and re-apply delays
	// (default 100ms and 3s); each delay is jittered down by up to half.
	MinBackoff, MaxBackoff time.Duration
	// StateFile is where the last applied snapshot is kept ("" for none).
	StateFile string
	// GuardPorts are denied from the agent's first second until the server's
	// first snapshot, even with no state file (fail closed at first boot).
	GuardPorts []agenthub.SnapshotPort
	// OfflineGrace is how long the agent waits for the server's first
	// snapshot before it opens the state file's unexpired grants (default
	// 2s; a refused connection opens them at once).
	OfflineGrace time.Duration
	// Watch, if set, reports other processes' changes to the table (normally
	// nftables.Watch on the same namespace); nil disables drift repair.
	Watch func(ctx context.Context, ready chan<- struct{}, fn func(nftables.Change)) error
}

// target is what the agent enforces.
type target struct {
	snap   agenthub.Snapshot
	server bool   // the server's snapshot (authoritative: may disable JIT)
	what   string // for logs and drift records
}

// Status is what the agent is doing, for tests and `agent --status`.
type Status struct {
	Target    string          // what it enforces ("server snapshot v…", "boot guard", …)
	Version   uint64          // the server version of the last applied snapshot
	Connected bool            // a server snapshot arrived on the current stream
	Drifts    int             // repairs since start
	LastDrift *agenthub.Drift // the latest repair
	LastError string          // the last apply error, "" after a success
}

// Agent runs one VM's reconcile loop.
type Agent struct {
	cfg Config

	mu         sync.Mutex
	tgt        *target
	gen        uint64 // bumped when tgt changes
	done       uint64 // gen of the last successful apply
	drifts     []nftables.Change
	serverSeen bool
	offline    bool // the state file's grants were added
	file       *StateFile
	bootGuard  []agenthub.SnapshotPort
	bootGrants []agenthub.SnapshotGrant
	status     Status
	wake       chan struct{}

	repMu     sync.Mutex
	report    *agenthub.Report
	driftReps []agenthub.Report
	repWake   chan struct{}
}

// New validates cfg and returns an agent.
func New(cfg Config) (*Agent, error) {
	if cfg.Server == "" || cfg.VM == "" || cfg.Firewall == nil {
		return nil, errors.New("agent: Server, VM and Firewall are required")
	}
	if _, err := url.Parse(cfg.Server); err != nil {
		return nil, fmt.Errorf("agent: server URL: %w", err)
	}
	cfg.Server = strings.TrimRight(cfg.Server, "/")
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = 30 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(3*time.Second, cfg.MinBackoff)
	}
	if cfg.OfflineGrace <= 0 {
		cfg.OfflineGrace = 2 * time.Second
	}
	return &Agent{cfg: cfg, wake: make(chan struct{}, 1), repWake: make(chan struct{}, 1)}, nil
}

// Status returns a copy of the agent's status.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.status
	if s.LastDrift != nil {
		d := *s.LastDrift
		s.LastDrift = &d
	}
	return s
}

// Run runs until ctx ends. It returns ctx's error; every other failure is
// logged and retried.
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if a.cfg.Watch != nil {
		ready := make(chan struct{})
		wg.Add(1)
		go func() { defer wg.Done(); a.watchLoop(ctx, ready) }()
		select { // subscribed before the boot apply, so no change slips by
		case <-ready:
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
	a.boot(ctx)
	if err := a.applyOnce(ctx, nil); err != nil { // the guard, before contacting the server
		a.cfg.Logger.Error("installing the boot guard failed; retrying", "err", err)
		a.poke()
	}
	wg.Add(3)
	go func() { defer wg.Done(); a.applyLoop(ctx) }()
	go func() { defer wg.Done(); a.reportLoop(ctx) }()
	go func() {
		defer wg.Done()
		if sleep(ctx, a.cfg.OfflineGrace) {
			a.goOffline("no snapshot from the server within " + a.cfg.OfflineGrace.String())
		}
	}()
	a.streamLoop(ctx)
	return ctx.Err()
}

// boot sets the first target: the guard from the state file, GuardPorts
// and the kernel, with the kernel's grants kept.
func (a *Agent) boot(ctx context.Context) {
	log := a.cfg.Logger
	var version uint64
	if a.cfg.StateFile != "" {
		sf, err := LoadState(a.cfg.StateFile)
		switch {
		case err != nil:
			log.Error("ignoring the state file", "err", err)
		case sf == nil:
			log.Warn("no state file yet", "path", a.cfg.StateFile)
		case sf.Snapshot.VM != a.cfg.VM:
			log.Error("ignoring the state file: it is another VM's", "path", a.cfg.StateFile, "vm", sf.Snapshot.VM)
		default:
			a.file = sf
			version = sf.Snapshot.Version
			a.status.Drifts, a.status.LastDrift = sf.Drifts, sf.LastDrift
		}
	}
	kst, err := a.cfg.Firewall.Observe(ctx)
	if err != nil {
		log.Warn("reading the kernel's drawbridge table", "err", err)
	}
	var guard []agenthub.SnapshotPort
	if a.file != nil {
		guard = append(guard, a.file.Snapshot.Guarded...)
	}
	guard = append(guard, a.cfg.GuardPorts...)
	for _, g := range kst.Guarded {
		guard = append(guard, agenthub.SnapshotPort{Port: g.Port, Protocol: string(g.Protocol)})
	}
	var grants []agenthub.SnapshotGrant
	for _, g := range kst.Grants {
		grants = append(grants, agenthub.SnapshotGrant{Port: g.Port, Protocol: string(g.Protocol), Source: g.Source.String(), End: g.End})
	}
	a.bootGuard, a.bootGrants = dedupePorts(guard), grants
	snap := agenthub.Snapshot{Type: "snapshot", VM: a.cfg.VM, Version: version, Guarded: a.bootGuard, Grants: grants}
	what := fmt.Sprintf("boot guard (%d ports from the state file, --guard-ports and the kernel; %d kernel grant prefixes kept)", len(a.bootGuard), len(grants))
	if len(a.bootGuard) == 0 {
		log.Error("NOTHING TO GUARD until the server answers: no state file, no --guard-ports and no drawbridge table in the kernel; guarded ports stay open until then",
			"state_file", a.cfg.StateFile)
	}
	a.setTarget(target{snap: snap, what: what})
	log.Info("kernel state at start", "guarded", len(kst.Guarded), "grants", len(kst.Grants), "target", what)
}

// goOffline adds the state file's unexpired grants to the boot guard, once,
// if no server snapshot has been applied.
func (a *Agent) goOffline(why string) {
	a.mu.Lock()
	if a.serverSeen || a.offline {
		a.mu.Unlock()
		return
	}
	a.offline = true
	grants := append([]agenthub.SnapshotGrant(nil), a.bootGrants...)
	var version uint64
	now := time.Now()
	n := 0
	if a.file != nil {
		version = a.file.Snapshot.Version
		for _, g := range a.file.Snapshot.Grants {
			if g.End.After(now) {
				grants = append(grants, g)
				n++
			}
		}
	}
	a.mu.Unlock()
	what := fmt.Sprintf("state file v%d while the server is unreachable (%d unexpired grants)", version, n)
	a.cfg.Logger.Warn("server unreachable; enforcing the state file", "why", why, "grants", n, "guarded", len(a.bootGuard))
	a.setTarget(target{snap: agenthub.Snapshot{Type: "snapshot", VM: a.cfg.VM, Version: version, Guarded: a.bootGuard, Grants: grants}, what: what})
}

// setTarget makes t the state to enforce and wakes the apply loop.
func (a *Agent) setTarget(t target) {
	a.mu.Lock()
	if t.server {
		a.serverSeen = true
		a.status.Connected = true
	}
	a.tgt = &t
	a.gen++
	a.status.Target = t.what
	a.mu.Unlock()
	a.poke()
}

func (a *Agent) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func dedupePorts(ps []agenthub.SnapshotPort) []agenthub.SnapshotPort {
	seen := map[agenthub.SnapshotPort]bool{}
	out := []agenthub.SnapshotPort{}
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
