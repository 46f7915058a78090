// Package agent is the host agent's reconcile loop: it keeps the host's
// nftables JIT table equal to what the drawbridge server holds for its VM.
//
// # How it works
//
//   - On start it reads the kernel's current table (Observe) and leaves it
//     alone: grants already in the kernel keep working, and their kernel
//     timeouts still close them on time. It never applies an empty state
//     "to start clean" and never flushes.
//   - It connects to GET /drawbridge/v1/agent/stream?vm=ID, an NDJSON stream
//     whose first object is the VM's full snapshot; every change on the
//     server sends a new full snapshot (no polling on the path from a request
//     to an open port). Each snapshot is converted to nftables.State ("*"
//     source → 0.0.0.0/0 and ::/0, protocol * → tcp and udp) and applied in
//     one netlink transaction as soon as it arrives (no timer on the path); a snapshot with no guarded port and no grant
//     disables JIT (the table is deleted).
//   - After each apply it POSTs /drawbridge/v1/agent/report with the
//     snapshot's version and the IDs of the grants it enforces, or the
//     error. A failed apply (netlink) is reported and retried with backoff
//     until it succeeds or a newer snapshot replaces it.
//   - If the stream ends, fails, or carries nothing (not even a heartbeat)
//     for HeartbeatTimeout, it reconnects with exponential backoff and
//     jitter. Meanwhile the kernel keeps enforcing the last applied state,
//     and each grant still ends at its end time (kernel timeout).
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
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
	// (default 100ms and 30s); each delay is jittered by ±50%.
	MinBackoff, MaxBackoff time.Duration
}

// Agent runs one VM's reconcile loop.
type Agent struct {
	cfg Config

	mu      sync.Mutex
	pending *agenthub.Snapshot // newest snapshot not yet applied successfully
	wake    chan struct{}

	repMu   sync.Mutex
	report  *agenthub.Report
	repWake chan struct{}
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
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	return &Agent{cfg: cfg, wake: make(chan struct{}, 1), repWake: make(chan struct{}, 1)}, nil
}

// Run runs until ctx ends. It returns ctx's error; every other failure is
// logged and retried.
func (a *Agent) Run(ctx context.Context) error {
	log := a.cfg.Logger
	if st, err := a.cfg.Firewall.Observe(ctx); err != nil {
		log.Warn("reading the kernel's drawbridge table", "err", err)
	} else {
		log.Info("kernel state at start (kept until the server's snapshot arrives)", "guarded", len(st.Guarded), "grants", len(st.Grants))
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a.applyLoop(ctx) }()
	go func() { defer wg.Done(); a.reportLoop(ctx) }()
	a.streamLoop(ctx)
	wg.Wait()
	return ctx.Err()
}

// backoff returns the n-th delay (n from 0), jittered by ±50%.
func (a *Agent) backoff(n int) time.Duration {
	d := a.cfg.MinBackoff
	for i := 0; i < n && d < a.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, a.cfg.MaxBackoff)
	return time.Duration(float64(d) * (0.5 + rand.Float64()))
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

func (a *Agent) streamLoop(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		got, err := a.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if got {
			failures = 0
		}
		d := a.backoff(failures)
		failures++
		a.cfg.Logger.Warn("stream ended; reconnecting", "err", err, "in", d.Round(time.Millisecond))
		if !sleep(ctx, d) {
			return
		}
	}
}

// stream reads one connection's snapshots until it fails. got reports
// whether a snapshot arrived.
func (a *Agent) stream(ctx context.Context) (got bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u := a.cfg.Server + "/drawbridge/v1/agent/stream?vm=" + url.QueryEscape(a.cfg.VM)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	if a.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
	}
	resp, err := a.cfg.HTTP.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return false, fmt.Errorf("stream: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	// Watchdog: no line within HeartbeatTimeout ends the connection.
	alive := make(chan struct{}, 1)
	go func() {
		t := time.NewTimer(a.cfg.HeartbeatTimeout)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-alive:
				if !t.Stop() {
					<-t.C
				}
				t.Reset(a.cfg.HeartbeatTimeout)
			case <-t.C:
				a.cfg.Logger.Warn("no heartbeat; dropping the stream", "after", a.cfg.HeartbeatTimeout)
				cancel()
				return
			}
		}
	}()
	dec := json.NewDecoder(resp.Body)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return got, fmt.Errorf("stream: %w", err)
		}
		select {
		case alive <- struct{}{}:
		default:
		}
		var env struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(raw, &env); err != nil {
			return got, fmt.Errorf("stream: %w", err)
		}
		if env.Type != "snapshot" {
			continue
		}
		var snap agenthub.Snapshot
		if err := json.Unmarshal(raw, &snap); err != nil {
			return got, fmt.Errorf("stream: snapshot: %w", err)
		}
		got = true
		a.cfg.Logger.Debug("snapshot received", "version", snap.Version, "grants", len(snap.Grants))
		a.mu.Lock()
		a.pending = &snap
		a.mu.Unlock()
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// applyLoop applies the newest snapshot; a failure is reported and retried
// with backoff until it succeeds or a newer snapshot arrives.
func (a *Agent) applyLoop(ctx context.Context) {
	failures := 0
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		case <-retry:
		}
		retry = nil
		a.mu.Lock()
		snap := a.pending
		a.mu.Unlock()
		if snap == nil {
			continue
		}
		began := time.Now()
		enforced, err := a.apply(ctx, *snap)
		took := time.Since(began)
		if ctx.Err() != nil {
			return
		}
		rep := agenthub.Report{VM: snap.VM, Version: snap.Version, Enforced: enforced}
		if err != nil {
			rep.Error = "agent: " + err.Error()
			d := a.backoff(failures)
			failures++
			a.cfg.Logger.Error("apply failed; retrying", "version", snap.Version, "err", err, "in", d.Round(time.Millisecond))
			retry = time.After(d)
		} else {
			failures = 0
			a.mu.Lock()
			if a.pending == snap {
				a.pending = nil
			}
			a.mu.Unlock()
			a.cfg.Logger.Debug("applied", "version", snap.Version, "guarded", len(snap.Guarded), "grants", len(snap.Grants), "took", took)
		}
		a.repMu.Lock()
		a.report = &rep
		a.repMu.Unlock()
		select {
		case a.repWake <- struct{}{}:
		default:
		}
	}
}

// apply enforces snap in one netlink transaction (additions and removals
// together, so a superseded or revoked grant stops admitting new
// connections in the same instant the new one starts) and returns the grant
// IDs the kernel now enforces. The Kernel firewall keeps its netlink socket
// open, so a transaction that removes elements costs about as little as
// one that only adds (~0.1 ms): closing the socket is what waits for the
// kernel's RCU grace period, see nftables.Kernel.
func (a *Agent) apply(ctx context.Context, snap agenthub.Snapshot) ([]string, error) {
	if snap.Disabled() {
		return nil, a.cfg.Firewall.Disable(ctx)
	}
	st, err := snap.State()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if err := a.cfg.Firewall.Apply(ctx, st); err != nil {
		return nil, err
	}
	return grantIDs(st, now), nil
}

// grantIDs lists the IDs of st's grants the kernel holds after a successful
// Apply at now: those ending at least a millisecond later.
func grantIDs(st nftables.State, now time.Time) []string {
	var ids []string
	seen := map[string]bool{}
	for _, g := range st.Grants {
		if g.End.Sub(now) >= time.Millisecond && !seen[g.ID] {
			seen[g.ID] = true
			ids = append(ids, g.ID)
		}
	}
	return ids
}

// reportLoop sends the newest report; a failed report is dropped (the next
// connection's snapshot is applied and reported again).
func (a *Agent) reportLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.repWake:
		}
		a.repMu.Lock()
		rep := a.report
		a.report = nil
		a.repMu.Unlock()
		if rep == nil {
			continue
		}
		if err := a.send(ctx, *rep); err != nil && ctx.Err() == nil {
			a.cfg.Logger.Warn("report failed", "version", rep.Version, "err", err)
		}
	}
}

func (a *Agent) send(ctx context.Context, rep agenthub.Report) error {
	if rep.Enforced == nil {
		rep.Enforced = []string{}
	}
	body, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.Server+"/drawbridge/v1/agent/report", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.cfg.Token)
	}
	resp, err := a.cfg.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("report: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}
