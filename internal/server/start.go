package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/clock"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/webhook"
)

// Start opens the store, revokes grants that fell due while no server ran,
// and serves the API. Stop it with Close.
//
// Each step below is a method of startup; when one fails, abort closes
// what the earlier steps opened (listener, webhook dispatcher, store).
func Start(ctx context.Context, cfg Config) (*Server, error) {
	u := &startup{began: time.Now(), cfg: withDefaults(cfg), s: &Server{}}
	if err := u.loadCerts(); err != nil {
		return nil, err
	}
	steps := []func(context.Context) error{
		u.openStore,
		u.buildEvents,
		u.buildProviders,
		u.buildService,
		u.expireOverdue, // before anything else: close what fell due while down
		u.loadSampleInventory,
		u.listen,
		u.setupAuth,
		u.buildAPI,
		u.serveHTTP,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			u.abort()
			return nil, err
		}
	}
	u.startJobs()
	return u.s, nil
}

// startup is what Start has built so far. The Server's own fields hold
// what it keeps; the rest lives here until the next step uses it.
type startup struct {
	began time.Time
	cfg   Config
	s     *Server

	certs     *certReloader // nil without TLS
	events    fanOut
	providers jit.ProviderMap
	awsRT     *awsRuntime
	ln        net.Listener
	authn     api.Authenticator
	authz     api.Authorizer
	cp        *checkpointer
	apiServer *api.Server
	handler   http.Handler
}

// withDefaults fills the Config fields whose zero value means "default".
func withDefaults(cfg Config) Config {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RefusalLimiter == nil {
		cfg.RefusalLimiter = defaultRefusalLimiter()
	}
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = 5 * time.Minute
	}
	cfg.Logger = WithRequestIDs(cfg.Logger)
	return cfg
}

// loadCerts reads the TLS pair, if any, before anything is opened.
func (u *startup) loadCerts() error {
	if u.cfg.TLSCertFile == "" && u.cfg.TLSKeyFile == "" {
		return nil
	}
	certs, err := newCertReloader(u.cfg.TLSCertFile, u.cfg.TLSKeyFile, u.cfg.Logger)
	u.certs = certs
	return err
}

func (u *startup) openStore(ctx context.Context) error {
	st, err := openBackend(ctx, u.cfg.DBPath, u.cfg.sqliteOptions)
	if err != nil {
		return err
	}
	if testWrapStore != nil {
		st = testWrapStore(st)
	}
	u.s.store = st
	u.s.Metrics = metrics.New()
	return nil
}

// buildEvents sets where committed changes' events go: metrics, the log,
// and the webhook dispatcher when Config.Webhook has URLs.
func (u *startup) buildEvents(context.Context) error {
	u.events = fanOut{u.s.Metrics, eventLog{u.cfg.Logger}}
	if len(u.cfg.Webhook.URLs) == 0 {
		return nil
	}
	opt := u.cfg.Webhook
	if opt.Logger == nil {
		opt.Logger = u.cfg.Logger
	}
	hooks, err := webhook.New(opt)
	if err != nil {
		return err
	}
	u.s.Webhooks = hooks
	u.events = append(u.events, hooks)
	return nil
}

// buildProviders maps each inventory provider name to its provider: the
// simulator, the agent hub for nftables hosts, Config.ExtraProviders and
// AWS when configured.
func (u *startup) buildProviders(ctx context.Context) error {
	u.s.Sim = sim.New(u.s.store)
	u.s.Agents = agenthub.New()
	u.providers = jit.ProviderMap{
		inventory.ProviderSim:      u.s.Sim,
		inventory.ProviderNftables: issuingHub{u.s.Agents, u.s.Metrics},
	}
	for name, p := range u.cfg.ExtraProviders {
		u.providers[name] = p
	}
	var err error
	u.awsRT, err = addAWSProvider(ctx, u.cfg, u.s.store, u.providers)
	return err
}

// buildService creates the JIT service and connects the agent hub to it.
func (u *startup) buildService(context.Context) error {
	m := u.s.Metrics
	svc := jit.NewService(jit.Config{
		Store:     timedStore{u.s.store, m},
		Providers: m.WrapProviders(u.providers),
		Clock:     clock.Real{},
		NewID:     NewID,
		Events:    u.events,

		ApprovalTimeout: u.cfg.ApprovalTimeout,
	})
	hub := u.s.Agents
	hub.SetReconciler(svc.ReconcileVM)
	hub.SetReporter(m.WrapReporter(inventory.ProviderNftables, svc.ReportObserved))
	hub.SetDriftRecorder(func(ctx context.Context, vmID string, d agenthub.Drift) error {
		if d.Restored != "" {
			m.DriftRepaired(inventory.ProviderNftables)
		}
		return svc.RecordDrift(ctx, vmID, jit.DriftRecord{SeenAt: d.Time, Found: d.Found, Restored: d.Restored, Error: d.Error})
	})
	u.s.Service = svc
	return nil
}

// expireOverdue revokes the grants that fell due while no server ran. A
// failure is logged, not fatal: the expiry job retries.
func (u *startup) expireOverdue(ctx context.Context) error {
	n, err := u.s.Service.ExpireDue(ctx)
	u.s.StartupExpired, u.s.StartupExpiry = n, time.Since(u.began)
	if err != nil {
		u.cfg.Logger.Error("revoking overdue grants at start", "err", err)
	}
	if n > 0 {
		u.cfg.Logger.Info("revoked grants that fell due while the server was down", "count", n, "took", u.s.StartupExpiry)
	}
	return nil
}

// loadSampleInventory loads inventory.Sample when asked to and the store
// has no VMs yet.
func (u *startup) loadSampleInventory(ctx context.Context) error {
	if !u.cfg.SampleInventory {
		return nil
	}
	vms, err := u.s.Service.ListVMs(ctx)
	if err != nil {
		return err
	}
	if len(vms) == 0 {
		if err := u.s.Service.ApplyInventory(ctx, inventory.Sample()); err != nil {
			return fmt.Errorf("load sample inventory: %w", err)
		}
	}
	return nil
}

func (u *startup) listen(context.Context) error {
	ln, err := net.Listen("tcp", u.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", u.cfg.Listen, err)
	}
	u.ln = ln
	return nil
}

// setupAuth opens the access store, builds the authenticator and
// authorizer (auth.go) and starts the audit checkpointer.
func (u *startup) setupAuth(ctx context.Context) error {
	acc := access.New(u.s.store, nil)
	u.s.Access = acc
	var err error
	if u.authn, u.authz, err = u.s.setupAuth(ctx, u.cfg, acc); err != nil {
		return err
	}
	var sink jit.EventSink
	if u.s.Webhooks != nil {
		sink = u.s.Webhooks
	}
	u.cp, u.s.AuditKeyFile, err = startCheckpointer(ctx, u.cfg, acc, sink)
	return err
}

// buildAPI builds the REST API and puts the web console beside it.
func (u *startup) buildAPI(ctx context.Context) error {
	acc := u.s.Access
	u.apiServer = api.New(api.Config{
		Authenticator:  u.authn,
		Authorizer:     u.authz,
		Auditor:        acc,
		Access:         acc,
		FailureLimiter: auth.NewFailureLimiter(10, 6*time.Second, 0),
		RefusalLimiter: u.cfg.RefusalLimiter,
		AuditPublicKey: u.cp.public(),
		Service:        u.s.Service,
		Network:        u.s.Sim,
		Logger:         u.cfg.Logger,
		TrustedProxies: u.cfg.TrustedProxies,
		Agents:         observedAgents{u.s.Agents, u.s.Metrics, u.cfg.Logger},
		AzurePageSize:  u.cfg.AzurePageSize,
	})
	var err error
	u.handler, err = u.s.withConsole(ctx, u.cfg, acc, u.authz, u.apiServer.Handler())
	return err
}

// serveHTTP builds the HTTP server (ops.go) on the listener; Serve starts
// with the jobs.
func (u *startup) serveHTTP(context.Context) error {
	s := u.s
	s.URL = "http://" + u.ln.Addr().String()
	if u.certs != nil {
		s.certs = u.certs
		s.URL = "https://" + u.ln.Addr().String()
	}
	if err := s.serveOps(u.cfg, u.apiServer, u.handler, u.ln); err != nil {
		return err
	}
	if u.certs != nil {
		s.http.TLSConfig = u.certs.tlsConfig()
	}
	return nil
}

// startJobs starts serving and the background jobs; Close stops them.
func (u *startup) startJobs() {
	s, svc, log := u.s, u.s.Service, u.cfg.Logger
	jobCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(3)
	s.ops.ready.expiry.Store(true)
	go func() {
		defer s.wg.Done()
		defer s.ops.ready.expiry.Store(false)
		svc.RunExpiry(jobCtx, func(err error) { log.Error("expiry", "err", err) })
	}()
	go func() {
		defer s.wg.Done()
		svc.RunResync(jobCtx, u.cfg.ResyncInterval, func(vm string, err error) { log.Warn("reconcile failed", "vm", vm, "err", err) })
	}()
	go func() {
		defer s.wg.Done()
		serve := s.http.Serve
		if s.certs != nil {
			serve = func(ln net.Listener) error { return s.http.ServeTLS(ln, "", "") }
		}
		if err := serve(u.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "err", err)
		}
	}()
	startReplicaJobs(jobCtx, &s.wg, s.store, svc, s.Agents, log)
	runAuditJobs(jobCtx, &s.wg, u.apiServer, u.cp)
	startAWSJobs(jobCtx, &s.wg, u.cfg, u.awsRT, svc)
}

// abort closes what the steps so far opened, newest first.
func (u *startup) abort() {
	if u.ln != nil {
		u.ln.Close()
	}
	if u.s.Webhooks != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = u.s.Webhooks.Close(ctx)
		cancel()
	}
	if u.s.store != nil {
		u.s.store.Close()
	}
}
