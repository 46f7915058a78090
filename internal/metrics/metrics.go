// Package metrics owns drawbridge's Prometheus metrics: their names,
// labels and buckets, and the seams through which the rest of the server
// feeds them without depending on client_golang: an HTTP observation call,
// a jit.EventSink (requests, approvals, grants opened and closed), wrappers
// around providers and the agent hub's reporter, and scrape-time sources
// for what the store already knows (active grants, audit records).
//
// Labels are bounded: route patterns, methods, status codes, provider
// names, operations, outcomes and reasons. Never a VM ID, principal,
// grant or request ID.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/drawbridge/drawbridge/internal/buildinfo"
)

// latencyBuckets span the API's and the firewall's latencies: 1ms to 1min.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// lagBuckets span expiry lag and time to applied: 10ms to 10min (an agent
// may be reconnecting).
var lagBuckets = []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// Metrics holds every drawbridge metric and the registry that serves them.
// The zero value is not usable; call New.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
	jitRequests   *prometheus.CounterVec
	approvals     *prometheus.CounterVec
	grantsOpened  prometheus.Counter
	grantsClosed  *prometheus.CounterVec
	timeToApplied *prometheus.HistogramVec
	expiryLag     *prometheus.HistogramVec
	agents        prometheus.Gauge
	agentApply    prometheus.Histogram
	agentReports  *prometheus.CounterVec
	storeWrite    prometheus.Histogram
	providerCalls *prometheus.CounterVec
	providerErrs  *prometheus.CounterVec
	providerTime  *prometheus.HistogramVec
	drift         *prometheus.CounterVec

	track  *tracker
	agentT *agentTracker

	mu        sync.Mutex
	providers []string // names WrapProviders saw: their grant gauges start at 0
}

// New registers every metric, the Go runtime and process collectors and
// drawbridge_build_info on a fresh registry.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drawbridge_http_requests_total", Help: "HTTP requests answered, by method, route pattern and status code.",
	}, []string{"method", "route", "code"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "drawbridge_http_request_duration_seconds", Help: "Time to answer an HTTP request, by method and route pattern.", Buckets: latencyBuckets,
	}, []string{"method", "route"})
	m.jitRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drawbridge_jit_requests_total", Help: "JIT access requests by outcome (accepted, pending approval, refused) and, for refusals, reason.",
	}, []string{"outcome", "reason"})
	m.approvals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drawbridge_jit_approval_decisions_total", Help: "Requests needing approval that were decided: approved, denied or lapsed.",
	}, []string{"decision"})
	m.grantsOpened = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "drawbridge_grants_opened_total", Help: "Grants (one per VM, port and source) opened.",
	})
	m.grantsClosed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drawbridge_grants_closed_total", Help: "Grants closed, by reason (Expired, UserRequested, NewerRequestInitiated, PolicyRemoved).",
	}, []string{"reason"})
	m.timeToApplied = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "drawbridge_grant_time_to_applied_seconds", Help: "From a grant opening (request accepted or approved) to its provider or agent reporting the rule enforced, by provider.", Buckets: lagBuckets,
	}, []string{"provider"})
	m.expiryLag = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "drawbridge_grant_expiry_lag_seconds", Help: "From an expiring grant's end time to its revocation committed (stage=revoked) and to its provider or agent reporting the rule gone (stage=removed).", Buckets: lagBuckets,
	}, []string{"stage"})
	m.agents = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "drawbridge_agents_connected", Help: "Agent streams open on this server.",
	})
	m.agentApply = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "drawbridge_agent_snapshot_apply_seconds", Help: "From a desired-state snapshot being issued for an agent's VM to the agent reporting that version applied.", Buckets: lagBuckets,
	})
	m.agentReports = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drawbridge_agent_reports_total", Help: "Agent reports accepted, by result (ok, error: the agent failed to apply).",
	}, []string{"result"})
	m.storeWrite = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "drawbridge_store_write_transaction_duration_seconds", Help: "JIT write transactions from submission to commit (queueing for the writer included).", Buckets: latencyBuckets,
	})
	m.providerCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drawbridge_provider_calls_total", Help: "Calls to firewall providers, by provider and operation (check, apply).",
	}, []string{"provider", "operation"})
	m.providerErrs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drawbridge_provider_errors_total", Help: "Provider calls that failed, by provider and operation.",
	}, []string{"provider", "operation"})
	m.providerTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "drawbridge_provider_call_duration_seconds", Help: "Duration of provider calls, by provider and operation.", Buckets: latencyBuckets,
	}, []string{"provider", "operation"})
	m.drift = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drawbridge_drift_repairs_total", Help: "Firewall drift found and repaired, by provider.",
	}, []string{"provider"})
	for _, c := range []prometheus.Collector{m.httpRequests, m.httpDuration, m.jitRequests, m.approvals, m.grantsOpened, m.grantsClosed,
		m.timeToApplied, m.expiryLag, m.agents, m.agentApply, m.agentReports, m.storeWrite, m.providerCalls, m.providerErrs, m.providerTime, m.drift} {
		f(c)
	}
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	version, revision := BuildInfo()
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "drawbridge_build_info", Help: "Always 1; the labels name the running build.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision},
	}, func() float64 { return 1 }))
	m.track = newTracker(m)
	m.agentT = newAgentTracker()
	return m
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Register adds a collector (used for scrape-time sources).
func (m *Metrics) Register(c prometheus.Collector) error { return m.reg.Register(c) }

// ObserveHTTP records one answered request. route is the ServeMux pattern
// that served it ("" when none matched), never the raw path.
func (m *Metrics) ObserveHTTP(method, route string, status int, d time.Duration) {
	method = boundedMethod(method)
	if route == "" {
		route = "unmatched"
	}
	m.httpRequests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(method, route).Observe(d.Seconds())
}

// RequestRefused counts a JIT request the API refused, with a reason
// derived from the status (bad_request, forbidden, conflict, ...).
func (m *Metrics) RequestRefused(status int) {
	m.jitRequests.WithLabelValues("refused", RefusalReason(status)).Inc()
}

// RefusalReason names a refusal's status in a bounded vocabulary.
func RefusalReason(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnauthorized:
		return "unauthenticated"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	if status >= 500 {
		return "error"
	}
	return "other"
}

// DriftRepaired counts one repair of a firewall that had drifted from the
// desired state.
func (m *Metrics) DriftRepaired(provider string) { m.drift.WithLabelValues(provider).Inc() }

// ObserveStoreWrite records one write transaction's duration.
func (m *Metrics) ObserveStoreWrite(d time.Duration) { m.storeWrite.Observe(d.Seconds()) }

func boundedMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// BuildInfo returns the main module's version and VCS revision from the
// binary's build information ("(devel)" and "unknown" when absent).
func BuildInfo() (version, revision string) { return buildinfo.Read() }
