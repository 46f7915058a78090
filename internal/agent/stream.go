package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
)

// backoff returns the n-th delay (n from 0): MinBackoff doubled n times,
// capped at MaxBackoff, then jittered down by up to half (never above the
// cap, so a returning server is retried within MaxBackoff).
func (a *Agent) backoff(n int) time.Duration {
	d := a.cfg.MinBackoff
	for i := 0; i < n && d < a.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, a.cfg.MaxBackoff)
	return time.Duration(float64(d) * (0.5 + rand.Float64()/2))
}

func (a *Agent) streamLoop(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		got, err := a.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		a.mu.Lock()
		a.status.Connected = false
		a.mu.Unlock()
		if got {
			failures = 0
		} else {
			a.goOffline(fmt.Sprint(err))
		}
		d := a.backoff(failures)
		failures++
		a.cfg.Logger.Warn("stream ended; reconnecting", "err", err, "within", d.Round(time.Millisecond))
		if !a.waitServer(ctx, d) {
			return
		}
	}
}

// waitServer waits up to d, but returns early (after a short random delay,
// so a fleet does not reconnect in one instant) once the server's address
// accepts a TCP connection. It returns false if ctx ended.
func (a *Agent) waitServer(ctx context.Context, d time.Duration) bool {
	addr := serverAddr(a.cfg.Server)
	deadline := time.Now().Add(d)
	const probe = 100 * time.Millisecond
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return ctx.Err() == nil
		}
		if !sleep(ctx, min(probe, left)) {
			return false
		}
		if addr == "" || time.Until(deadline) <= 0 {
			continue
		}
		var dl net.Dialer
		pctx, cancel := context.WithTimeout(ctx, probe)
		c, err := dl.DialContext(pctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			return sleep(ctx, time.Duration(rand.Int64N(int64(50*time.Millisecond))))
		}
	}
}

// serverAddr is the host:port of a server URL ("" if it has none).
func serverAddr(server string) string {
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		return ""
	}
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
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
		a.setTarget(target{snap: snap, server: true, what: fmt.Sprintf("server snapshot v%d", snap.Version)})
	}
}
