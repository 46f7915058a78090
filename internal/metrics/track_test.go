package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// clockAt makes the tracker's clock return t.
func (m *Metrics) clockAt(t *time.Time) { m.track.now = func() time.Time { return *t } }

func histCount(t *testing.T, m *Metrics, name, labels string) int {
	t.Helper()
	n, err := testutil.GatherAndCount(m.reg, name)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		return 0
	}
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			var ls []string
			for _, l := range s.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			if strings.Join(ls, ",") == labels {
				return int(s.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

func histSum(m *Metrics, name, labels string) float64 {
	mfs, _ := m.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			var ls []string
			for _, l := range s.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			if strings.Join(ls, ",") == labels {
				return s.GetHistogram().GetSampleSum()
			}
		}
	}
	return -1
}

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func ev(kind jit.EventKind, grant string, at, end time.Time, reason jit.Reason) jit.Event {
	return jit.Event{Kind: kind, GrantID: grant, RequestID: "r-" + grant, VMID: "/S/vm1", Time: at, EndTime: end, Reason: reason}
}

// Synchronous provider: enforcement is seen inside the transaction, before
// the committed event; both latencies come out right.
func TestTrackerProviderBeforeEvent(t *testing.T) {
	m := New()
	now := t0
	m.clockAt(&now)
	end := t0.Add(time.Minute)
	now = t0.Add(200 * time.Millisecond)
	m.track.observed("sim", "/s/VM1", []string{"g1"}, true)
	m.Publish([]jit.Event{ev(jit.EventOpened, "g1", t0, end, jit.ReasonUserRequested)})
	if c, s := histCount(t, m, "drawbridge_grant_time_to_applied_seconds", "provider=sim"), histSum(m, "drawbridge_grant_time_to_applied_seconds", "provider=sim"); c != 1 || s < 0.19 || s > 0.21 {
		t.Fatalf("time to applied: count %d sum %v; want 1, 0.2", c, s)
	}
	now = end.Add(3 * time.Second)
	m.track.observed("sim", "/s/vm1", nil, true)
	m.Publish([]jit.Event{ev(jit.EventClosed, "g1", end.Add(2*time.Second), end, jit.ReasonExpired)})
	if s := histSum(m, "drawbridge_grant_expiry_lag_seconds", "stage=removed"); s != 3 {
		t.Fatalf("removed lag = %v; want 3", s)
	}
	if s := histSum(m, "drawbridge_grant_expiry_lag_seconds", "stage=revoked"); s != 2 {
		t.Fatalf("revoked lag = %v; want 2", s)
	}
	if len(m.track.grants) != 0 {
		t.Fatalf("entries left: %v", m.track.grants)
	}
}

// Agent: the event comes first, the reports later; an asynchronous Apply
// (Pending) never counts as a removal.
func TestTrackerEventBeforeAgent(t *testing.T) {
	m := New()
	now := t0
	m.clockAt(&now)
	end := t0.Add(time.Minute)
	m.Publish([]jit.Event{ev(jit.EventOpened, "g1", t0, end, jit.ReasonUserRequested)})
	now = t0.Add(time.Second)
	m.track.observed("nftables", "/s/vm1", []string{"g1"}, true) // agent report
	now = end
	m.track.observed("nftables", "/s/vm1", nil, false) // hub Apply without g1: not a removal
	m.Publish([]jit.Event{ev(jit.EventClosed, "g1", end, end, jit.ReasonExpired)})
	if c := histCount(t, m, "drawbridge_grant_expiry_lag_seconds", "stage=removed"); c != 0 {
		t.Fatalf("removal measured before the agent reported it")
	}
	now = end.Add(1500 * time.Millisecond)
	m.track.observed("nftables", "/s/vm1", nil, true)
	if s := histSum(m, "drawbridge_grant_expiry_lag_seconds", "stage=removed"); s != 1.5 {
		t.Fatalf("removed lag = %v; want 1.5", s)
	}
	if s := histSum(m, "drawbridge_grant_time_to_applied_seconds", "provider=nftables"); s != 1 {
		t.Fatalf("time to applied = %v; want 1", s)
	}
}

// A provider saw a grant of a transaction that rolled back: no committed
// event, no measurement, and the entry is pruned. A grant revoked by a
// user measures no expiry lag.
func TestTrackerRollbackAndUserRevoke(t *testing.T) {
	m := New()
	now := t0
	m.clockAt(&now)
	m.track.observed("sim", "/s/vm1", []string{"ghost"}, true)
	now = now.Add(orphanAge + 2*time.Minute)
	m.track.observed("sim", "/s/vm2", nil, true) // triggers the prune
	if _, ok := m.track.grants["ghost"]; ok {
		t.Fatal("orphan entry kept")
	}
	m.Publish([]jit.Event{ev(jit.EventOpened, "g2", now, now.Add(time.Hour), jit.ReasonUserRequested)})
	m.track.observed("sim", "/s/vm1", []string{"g2"}, true)
	m.track.observed("sim", "/s/vm1", nil, true)
	m.Publish([]jit.Event{ev(jit.EventClosed, "g2", now, now.Add(time.Hour), jit.ReasonUserRequested)})
	if c := histCount(t, m, "drawbridge_grant_time_to_applied_seconds", "provider=sim"); c != 1 {
		t.Fatalf("time to applied count = %d; want 1 (g2 only)", c)
	}
	if c := histCount(t, m, "drawbridge_grant_expiry_lag_seconds", "stage=removed") + histCount(t, m, "drawbridge_grant_expiry_lag_seconds", "stage=revoked"); c != 0 {
		t.Fatalf("expiry lag measured for a user revoke")
	}
	if len(m.track.grants) != 0 {
		t.Fatalf("entries left: %v", m.track.grants)
	}
}

// Requests are counted once each, not once per port.
func TestPublishCountsRequestsOnce(t *testing.T) {
	m := New()
	evs := []jit.Event{
		{Kind: jit.EventRequested, RequestID: "r1", GrantID: "a"}, {Kind: jit.EventRequested, RequestID: "r1", GrantID: "b"},
		{Kind: jit.EventRequested, RequestID: "r2", GrantID: "c", Reason: jit.ReasonAwaitingApproval},
		{Kind: jit.EventDenied, RequestID: "r2", GrantID: "c", Reason: jit.ReasonApprovalLapsed},
	}
	m.Publish(evs)
	if v := testutil.ToFloat64(m.jitRequests.WithLabelValues("accepted", "")); v != 1 {
		t.Fatalf("accepted = %v", v)
	}
	if v := testutil.ToFloat64(m.jitRequests.WithLabelValues("pending", "")); v != 1 {
		t.Fatalf("pending = %v", v)
	}
	if v := testutil.ToFloat64(m.approvals.WithLabelValues("lapsed")); v != 1 {
		t.Fatalf("lapsed = %v", v)
	}
}
