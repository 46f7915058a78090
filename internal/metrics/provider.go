package metrics

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// WrapProviders returns ps with every provider counted and timed by name
// (the map key: sim, nftables, azure, ...). A jit.TxProvider stays one, so
// the service still applies it inside its transactions.
func (m *Metrics) WrapProviders(ps jit.ProviderMap) jit.ProviderMap {
	out := make(jit.ProviderMap, len(ps))
	for name, p := range ps {
		out[name] = m.WrapProvider(name, p)
	}
	m.mu.Lock()
	for name := range ps {
		m.providers = append(m.providers, name)
	}
	m.mu.Unlock()
	return out
}

// WrapProvider wraps one provider; see WrapProviders.
func (m *Metrics) WrapProvider(name string, p jit.Provider) jit.Provider {
	w := &provider{m: m, name: name, p: p}
	if tp, ok := p.(jit.TxProvider); ok {
		return &txProvider{provider: w, tp: tp}
	}
	return w
}

type provider struct {
	m    *Metrics
	name string
	p    jit.Provider
}

func (w *provider) call(op string, began time.Time, err error) {
	w.m.providerCalls.WithLabelValues(w.name, op).Inc()
	w.m.providerTime.WithLabelValues(w.name, op).Observe(time.Since(began).Seconds())
	if err != nil {
		w.m.providerErrs.WithLabelValues(w.name, op).Inc()
	}
}

func (w *provider) Check(ctx context.Context, vm inventory.VM, d jit.Desired) error {
	began := time.Now()
	err := w.p.Check(ctx, vm, d)
	w.call("check", began, err)
	return err
}

func (w *provider) Apply(ctx context.Context, vm inventory.VM, d jit.Desired) (jit.Observed, error) {
	began := time.Now()
	obs, err := w.p.Apply(ctx, vm, d)
	w.call("apply", began, err)
	w.observe(vm.ID, obs, err)
	return obs, err
}

// observe feeds the tracker. An asynchronous provider's Observed (Pending)
// lists only grants already confirmed: it adds, never removes.
func (w *provider) observe(vm string, obs jit.Observed, err error) {
	if len(obs.Drift) > 0 {
		w.m.DriftRepaired(w.name)
	}
	if err == nil {
		w.m.track.observed(w.name, vm, obs.Enforced, !obs.Pending)
	}
}

// Unwrap returns the wrapped provider, so the service finds its optional
// interfaces (jit.Holder).
func (w *provider) Unwrap() jit.Provider { return w.p }

type txProvider struct {
	*provider
	tp jit.TxProvider
}

func (w *txProvider) ApplyTx(ctx context.Context, objs store.Objects, vm inventory.VM, d jit.Desired) (jit.Observed, error) {
	began := time.Now()
	obs, err := w.tp.ApplyTx(ctx, objs, vm, d)
	w.call("apply", began, err)
	w.observe(vm.ID, obs, err)
	return obs, err
}

// Reporter is agenthub.Reporter's signature (kept here so this package
// does not import the hub).
type Reporter = func(ctx context.Context, vmID string, enforced []string, providerErr string) error

// WrapReporter returns next, also feeding what an agent reports it
// enforces (authoritative: the kernel's own state) to the latency tracker
// under provider name. The hub calls it only for reports it accepts.
func (m *Metrics) WrapReporter(name string, next Reporter) Reporter {
	return func(ctx context.Context, vmID string, enforced []string, providerErr string) error {
		result := "ok"
		if providerErr != "" {
			result = "error"
		}
		m.agentReports.WithLabelValues(result).Inc()
		m.track.observed(name, vmID, enforced, true)
		return next(ctx, vmID, enforced, providerErr)
	}
}

// agentTracker measures snapshot issued → agent reports that version.
// Latest wins: a newer version for a VM replaces the one waiting.
type agentTracker struct {
	mu   sync.Mutex
	sent map[string]sentVersion // VM key
}

type sentVersion struct {
	version uint64
	at      time.Time
}

func newAgentTracker() *agentTracker { return &agentTracker{sent: map[string]sentVersion{}} }

// SnapshotIssued records that version of vm's desired state was issued
// for its agents at now.
func (m *Metrics) SnapshotIssued(vm string, version uint64) {
	t := m.agentT
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sent[strings.ToLower(vm)] = sentVersion{version: version, at: time.Now()}
}

// SnapshotReported records an agent's report of version for vm; it
// observes the apply time if that is the version waiting.
func (m *Metrics) SnapshotReported(vm string, version uint64) {
	t := m.agentT
	key := strings.ToLower(vm)
	t.mu.Lock()
	s, ok := t.sent[key]
	if ok && s.version == version {
		delete(t.sent, key)
	}
	t.mu.Unlock()
	if ok && s.version == version {
		m.agentApply.Observe(time.Since(s.at).Seconds())
	}
}

// AgentConnected and AgentDisconnected keep drawbridge_agents_connected.
func (m *Metrics) AgentConnected()    { m.agents.Inc() }
func (m *Metrics) AgentDisconnected() { m.agents.Dec() }
