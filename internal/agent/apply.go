package agent

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
	"github.com/drawbridge/drawbridge/internal/provider/nftables"
)

// applyLoop enforces the newest target and repairs drift; a failure is
// reported and retried with backoff until it succeeds or a newer target
// arrives.
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
		if err := a.applyOnce(ctx, &failures); err != nil && ctx.Err() == nil {
			d := a.backoff(failures - 1)
			a.cfg.Logger.Error("apply failed; retrying", "err", err, "in", d.Round(time.Millisecond))
			retry = time.After(d)
		}
	}
}

// applyOnce enforces the current target if it is newer than the last one
// applied or drift was seen. failures, if not nil, counts consecutive
// failures.
func (a *Agent) applyOnce(ctx context.Context, failures *int) error {
	a.mu.Lock()
	t, gen, changes := a.tgt, a.gen, a.drifts
	a.drifts = nil
	if t == nil || (gen == a.done && len(changes) == 0) {
		a.mu.Unlock()
		return nil
	}
	a.mu.Unlock()
	seen := time.Now()
	var found string
	if len(changes) > 0 {
		var differs bool
		found, differs = a.inspect(ctx, changes, t)
		// Nothing missing and no one else to blame (lost notifications, or
		// our own name: an agent in a PID namespace cannot recognise its
		// own thread IDs, or `drawbridge agent --restore`): no drift.
		if !differs && !slices.ContainsFunc(changes, func(c nftables.Change) bool { return !c.Lost && c.Comm != ownComm() }) {
			found = ""
		}
	}
	began := time.Now()
	enforced, err := a.apply(ctx, t)
	took := time.Since(began)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	rep := agenthub.Report{VM: t.snap.VM, Version: t.snap.Version, Enforced: enforced}
	a.mu.Lock()
	if err != nil {
		rep.Error = "agent: " + err.Error()
		a.status.LastError = err.Error()
		if failures != nil {
			*failures++
		}
	} else {
		a.status.LastError = ""
		if failures != nil {
			*failures = 0
		}
		if a.done < gen {
			a.done = gen
		}
		if t.server {
			a.status.Version = t.snap.Version
		}
	}
	var drift *agenthub.Drift
	if found != "" {
		drift = &agenthub.Drift{Time: seen.UTC(), Found: found, Restored: describe(t, time.Now()), Error: rep.Error}
		a.status.Drifts++
		a.status.LastDrift = drift
		rep.Drift = drift
		if !t.server {
			rep.Version = 0 // no server version: the hub records only the drift
		}
	}
	st := a.status
	a.mu.Unlock()
	if drift != nil {
		a.cfg.Logger.Warn("drift repaired: the drawbridge table was changed by someone else", "found", drift.Found, "restored", drift.Restored, "err", rep.Error, "took", time.Since(seen))
	} else if err == nil {
		a.cfg.Logger.Debug("applied", "target", t.what, "version", t.snap.Version, "guarded", len(t.snap.Guarded), "grants", len(t.snap.Grants), "took", took)
	}
	if t.server || drift != nil {
		a.queueReport(rep) // first: the report need not wait for the fsync
	}
	if err == nil && (t.server || drift != nil) {
		a.save(t, st)
	}
	return err
}

// ownComm is this process's command name, as the kernel reports it. Read
// on first use, not at package init: every CLI call links this package
// and should not pay a /proc read it never uses.
var ownComm = sync.OnceValue(func() string {
	b, _ := os.ReadFile("/proc/self/comm")
	return strings.TrimSpace(string(b))
})

// inspect reads the table after a foreign change (which also makes the
// firewall forget what it believed the kernel held) and describes what
// happened and what the table held; differs reports whether a guarded
// port or a live grant of t was missing.
func (a *Agent) inspect(ctx context.Context, changes []nftables.Change, t *target) (found string, differs bool) {
	var parts []string
	for _, c := range changes {
		parts = append(parts, c.String())
	}
	st, err := a.cfg.Firewall.Observe(ctx)
	if err != nil {
		return strings.Join(parts, "; ") + "; reading the table failed: " + err.Error(), true
	}
	want, _ := t.snap.State()
	now := time.Now()
	missing := len(want.Guarded) - countGuard(st, want)
	live := map[string]bool{}
	for _, g := range want.Grants {
		if g.End.After(now) {
			live[g.ID] = true
		}
	}
	ok := map[string]bool{}
	for _, id := range nftables.Enforced(want.Grants, st, now, time.Second) {
		ok[id] = true
	}
	lost := len(live) - len(ok)
	held := fmt.Sprintf("the table then held %d guarded port entries and %d grant prefixes", len(st.Guarded), len(st.Grants))
	if missing > 0 || lost > 0 {
		held += fmt.Sprintf(" (%d of %d guarded ports and %d of %d grants missing)", missing, len(want.Guarded), max(lost, 0), len(live))
	}
	return strings.Join(parts, "; ") + "; " + held, missing > 0 || lost > 0
}

// countGuard counts want's guarded ports st still guards.
func countGuard(st, want nftables.State) int {
	n := 0
	for _, g := range want.Guarded {
		ok := true
		for _, pr := range []string{"Tcp", "Udp"} {
			if string(g.Protocol) != "*" && string(g.Protocol) != pr {
				continue
			}
			if !slices.ContainsFunc(st.Guarded, func(h nftables.GuardedPort) bool {
				return h.Port == g.Port && string(h.Protocol) == pr
			}) {
				ok = false
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// describe says what a target restores.
func describe(t *target, now time.Time) string {
	var ports []string
	for _, p := range t.snap.Guarded {
		ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
	}
	var grants []string
	for _, g := range t.snap.Grants {
		if left := g.End.Sub(now); left > 0 {
			grants = append(grants, fmt.Sprintf("%d/%s from %s (%s left)", g.Port, g.Protocol, g.Source, left.Round(time.Second)))
		}
	}
	if t.server && t.snap.Disabled() {
		return t.what + ": JIT disabled (no table)"
	}
	return fmt.Sprintf("%s: guarded [%s], grants [%s]", t.what, strings.Join(ports, " "), strings.Join(grants, "; "))
}

// apply enforces t in one netlink transaction (additions and removals
// together, so a superseded or revoked grant stops admitting new
// connections in the same instant the new one starts) and returns the grant
// IDs the kernel now enforces. Only the server's snapshot may disable JIT;
// a boot or offline target with nothing in it changes nothing.
func (a *Agent) apply(ctx context.Context, t *target) ([]string, error) {
	if t.snap.Disabled() {
		if t.server {
			return nil, a.cfg.Firewall.Disable(ctx)
		}
		return nil, nil
	}
	st, err := t.snap.State()
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
		if g.ID != "" && g.End.Sub(now) >= time.Millisecond && !seen[g.ID] {
			seen[g.ID] = true
			ids = append(ids, g.ID)
		}
	}
	return ids
}

// save writes the state file: the server snapshot last applied (a boot or
// offline target never replaces it) and the drift status.
func (a *Agent) save(t *target, st Status) {
	if a.cfg.StateFile == "" {
		return
	}
	a.mu.Lock()
	if t.server {
		a.file = &StateFile{Snapshot: t.snap}
	}
	if a.file == nil {
		a.mu.Unlock()
		return
	}
	sf := *a.file
	a.mu.Unlock()
	sf.Saved = time.Now().UTC()
	sf.Drifts, sf.LastDrift = st.Drifts, st.LastDrift
	if err := saveState(a.cfg.StateFile, sf); err != nil {
		a.cfg.Logger.Error("writing the state file", "path", a.cfg.StateFile, "err", err)
	}
}

// watchLoop feeds the firewall's change notifications to the apply loop,
// resubscribing if the subscription fails.
func (a *Agent) watchLoop(ctx context.Context, ready chan<- struct{}) {
	for ctx.Err() == nil {
		err := a.cfg.Watch(ctx, ready, func(c nftables.Change) {
			a.mu.Lock()
			a.drifts = append(a.drifts, c)
			a.mu.Unlock()
			a.poke()
		})
		ready = nil
		if ctx.Err() != nil {
			return
		}
		a.cfg.Logger.Error("watching nftables for drift failed; resubscribing", "err", err)
		// A change may have been missed: check the table.
		a.mu.Lock()
		a.drifts = append(a.drifts, nftables.Change{Lost: true})
		a.mu.Unlock()
		a.poke()
		if !sleep(ctx, time.Second) {
			return
		}
	}
}
