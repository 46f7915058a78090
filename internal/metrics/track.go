package metrics

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// The tracker joins two streams per grant ID to measure the product's two
// key latencies:
//
//   - committed events (jit.EventSink): a grant opened at T; a grant closed
//     because its end time E passed (revoked at R);
//   - provider observations: the set of grant IDs a VM's firewall enforces,
//     as a synchronous provider's Apply returns it or an agent reports it.
//
// Either may come first: the simulated provider applies inside the
// transaction, before its events are published; an agent reports long
// after. time to applied = first seen enforced − T; expiry lag = R − E
// (stage revoked) and first seen no longer enforced − E (stage removed).
// Only committed events finish a measurement, so a rolled-back transaction
// observed by a provider measures nothing; its entry is pruned.
type tracker struct {
	m      *Metrics
	now    func() time.Time
	mu     sync.Mutex
	grants map[string]*grantTrack         // by grant ID
	vms    map[string]map[string]struct{} // VM key → grant IDs last seen enforced
	pruned time.Time
}

type grantTrack struct {
	vm, provider  string
	opened        time.Time // committed open (event time); zero until seen
	enforced      time.Time // first seen enforced
	removed       time.Time // first seen no longer enforced after being enforced
	end           time.Time
	closed        bool
	expired       bool // closed with reason Expired
	applied, gone bool // latencies already observed
	touched       time.Time
}

// orphanAge is how long an entry no committed event has claimed is kept
// (a provider saw a grant of a transaction that rolled back, or one opened
// before this process started).
const orphanAge = 10 * time.Minute

func newTracker(m *Metrics) *tracker {
	return &tracker{m: m, now: time.Now, grants: map[string]*grantTrack{}, vms: map[string]map[string]struct{}{}}
}

func (t *tracker) get(id string, now time.Time) *grantTrack {
	g := t.grants[id]
	if g == nil {
		g = &grantTrack{}
		t.grants[id] = g
	}
	g.touched = now
	return g
}

// observed records that provider's firewall of vm enforces exactly
// enforced (authoritative) or at least enforced (not authoritative: an
// asynchronous provider's Apply, whose agent has yet to report).
func (t *tracker) observed(provider, vm string, enforced []string, authoritative bool) {
	now := t.now()
	key := strings.ToLower(vm)
	t.mu.Lock()
	defer t.mu.Unlock()
	set := make(map[string]struct{}, len(enforced))
	for _, id := range enforced {
		set[id] = struct{}{}
		g := t.get(id, now)
		g.vm, g.provider = key, provider
		if g.enforced.IsZero() {
			g.enforced = now
		}
		t.finishApplied(g)
	}
	if !authoritative {
		for id := range set {
			if t.vms[key] == nil {
				t.vms[key] = map[string]struct{}{}
			}
			t.vms[key][id] = struct{}{}
		}
		return
	}
	for id := range t.vms[key] {
		if _, still := set[id]; still {
			continue
		}
		if g := t.grants[id]; g != nil && g.removed.IsZero() {
			g.removed = now
			t.finishRemoved(id, g)
		}
	}
	t.vms[key] = set
	t.prune(now)
}

// event applies one committed event.
func (t *tracker) event(ev jit.Event) {
	if ev.GrantID == "" {
		return
	}
	switch ev.Kind {
	case jit.EventOpened:
		t.mu.Lock()
		g := t.get(ev.GrantID, t.now())
		g.opened = ev.Time
		g.vm = strings.ToLower(ev.VMID)
		t.finishApplied(g)
		t.mu.Unlock()
	case jit.EventClosed:
		if ev.Reason == jit.ReasonExpired {
			t.m.expiryLag.WithLabelValues("revoked").Observe(nonNegative(ev.Time.Sub(ev.EndTime)))
		}
		t.mu.Lock()
		g := t.get(ev.GrantID, t.now())
		g.closed, g.expired, g.end = true, ev.Reason == jit.ReasonExpired, ev.EndTime
		if g.enforced.IsZero() {
			delete(t.grants, ev.GrantID) // never enforced: nothing to remove
		} else {
			t.finishRemoved(ev.GrantID, g)
		}
		t.mu.Unlock()
	}
}

func (t *tracker) finishApplied(g *grantTrack) {
	if g.applied || g.opened.IsZero() || g.enforced.IsZero() {
		return
	}
	g.applied = true
	provider := g.provider
	if provider == "" {
		provider = "unknown"
	}
	t.m.timeToApplied.WithLabelValues(provider).Observe(nonNegative(g.enforced.Sub(g.opened)))
}

// finishRemoved ends a grant's tracking once it is both closed and gone.
func (t *tracker) finishRemoved(id string, g *grantTrack) {
	if !g.closed || g.removed.IsZero() {
		return
	}
	if g.expired && !g.gone {
		g.gone = true
		t.m.expiryLag.WithLabelValues("removed").Observe(nonNegative(g.removed.Sub(g.end)))
	}
	delete(t.grants, id)
	if s := t.vms[g.vm]; s != nil {
		delete(s, id)
	}
}

// prune drops, at most once a minute, entries no committed event claimed
// within orphanAge.
func (t *tracker) prune(now time.Time) {
	if now.Sub(t.pruned) < time.Minute {
		return
	}
	t.pruned = now
	for id, g := range t.grants {
		if g.opened.IsZero() && !g.closed && now.Sub(g.touched) > orphanAge {
			delete(t.grants, id)
		}
	}
}

func nonNegative(d time.Duration) float64 {
	if d < 0 {
		return 0
	}
	return d.Seconds()
}

// Publish implements jit.EventSink: it counts requests, approvals and
// grants, and feeds the latency tracker. It never blocks on I/O.
func (m *Metrics) Publish(evs []jit.Event) {
	// A request's events come one per port: count the request once.
	type kindReq struct {
		kind jit.EventKind
		req  string
	}
	var seen []kindReq
	for _, ev := range evs {
		k := kindReq{ev.Kind, ev.RequestID}
		first := !slices.Contains(seen, k)
		if first {
			seen = append(seen, k)
		}
		switch ev.Kind {
		case jit.EventRequested:
			if first {
				if ev.Reason == jit.ReasonAwaitingApproval {
					m.jitRequests.WithLabelValues("pending", "").Inc()
				} else {
					m.jitRequests.WithLabelValues("accepted", "").Inc()
				}
			}
		case jit.EventApproved:
			if first {
				m.approvals.WithLabelValues("approved").Inc()
			}
		case jit.EventDenied:
			if first {
				if ev.Reason == jit.ReasonApprovalLapsed {
					m.approvals.WithLabelValues("lapsed").Inc()
				} else {
					m.approvals.WithLabelValues("denied").Inc()
				}
			}
		case jit.EventOpened:
			m.grantsOpened.Inc()
		case jit.EventClosed:
			m.grantsClosed.WithLabelValues(string(ev.Reason)).Inc()
		}
		m.track.event(ev)
	}
}
