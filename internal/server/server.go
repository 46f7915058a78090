// Package server wires a drawbridge server together: the store, the
// providers, the JIT service with its expiry and resync jobs, and the HTTP
// API. `drawbridge server` and `drawbridge demo` both start one.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/clock"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/metrics"
	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
	awsprov "github.com/drawbridge/drawbridge/internal/provider/aws"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/postgres"
	"github.com/drawbridge/drawbridge/internal/store/sqlite"
	"github.com/drawbridge/drawbridge/internal/webhook"
)

// Config is what a server needs to start.
type Config struct {
	Listen string // host:port; "127.0.0.1:0" picks a free port
	// DBPath is a SQLite file, or a postgres:// (postgresql://) URL for
	// PostgreSQL, which several replicas can share.
	DBPath string
	// SampleInventory loads the built-in sample inventory when the store
	// has no VMs yet.
	SampleInventory bool
	TrustedProxies  []netip.Prefix
	// ResyncInterval is how often every guarded VM is reconciled as a safety net.
	ResyncInterval time.Duration
	Logger         *slog.Logger
	// AzurePageSize is how many policies a page of Azure's
	// jitNetworkAccessPolicies list calls holds (default: the api package's).
	AzurePageSize int

	// Insecure turns authentication and authorization off: every caller
	// is the principal "local" and may do everything. For local
	// experiments only; the default authenticates every API call.
	Insecure bool
	// AdminTokenFile is where the first start writes the bootstrap
	// administrator token (mode 0600). Default: beside the SQLite database
	// (DBPath + ".admin-token"), or drawbridge.admin-token for PostgreSQL.
	AdminTokenFile string
	// OIDC, if set, also accepts OIDC ID tokens from this issuer.
	OIDC *auth.OIDCConfig
	// ApprovalTimeout is how long a request needing approval may stay
	// pending (default jit.DefaultApprovalTimeout).
	ApprovalTimeout time.Duration
	// Webhook, if it has URLs, POSTs signed JSON events (requested,
	// approved, denied, opened, closed) to them after each change commits.
	// Logger defaults to the server's.
	Webhook webhook.Options
	// RefusalLimiter limits refused calls per principal and source
	// (default: 30 and 120 a minute; see auditjobs.go).
	RefusalLimiter *auth.RefusalLimiter
	// AuditKeyFile is the Ed25519 key that signs audit checkpoints,
	// created (0600, public key beside it as .pub) if missing. Default:
	// DefaultAuditKeyFile. A checkpoint is signed as soon as the log has
	// none, then every CheckpointEvery records (default 1000) or
	// CheckpointInterval (default 1m), whichever comes first, and at
	// Close; a negative CheckpointEvery signs only at Close.
	AuditKeyFile       string
	CheckpointEvery    int
	CheckpointInterval time.Duration
	// MetricsListen, if set, serves /metrics on this address only instead
	// of on Listen.
	MetricsListen string
	// ShutdownTimeout bounds how long Close waits for in-flight requests
	// (default 10s).
	ShutdownTimeout time.Duration

	// TLSCertFile and TLSKeyFile, if set, serve HTTPS with this PEM pair,
	// loaded again when the files change or on ReloadTLS (SIGHUP).
	TLSCertFile, TLSKeyFile string
	// HTTP timeouts; zero means the Default* values (httpserver.go).
	ReadTimeout, WriteTimeout, IdleTimeout, StreamWriteTimeout time.Duration
	// ExtraProviders are providers beside sim and nftables, by name (the
	// cloud providers: "azure").
	ExtraProviders jit.ProviderMap
	// AWS, if it names a region, runs the "aws" provider (aws.go).
	AWS *awsprov.Config
	// NoConsole turns the web console (/console/) off.
	NoConsole bool
	// OIDCClientSecret is the console's OIDC client secret (empty: a
	// public client, PKCE alone); OIDCRedirectURL its registered callback
	// (default: built from the request, http(s)://HOST/console/oidc/callback).
	OIDCClientSecret string
	OIDCRedirectURL  string
	// OIDCCLI is the public client the CLI signs in with (login_config.go).
	OIDCCLI OIDCCLIConfig

	// sqliteOptions turn SQLite's caches off, for benchmarks only
	// (export_test.go's WithSQLiteOptions).
	sqliteOptions sqlite.Options
}

// Server is a running drawbridge server.
type Server struct {
	URL     string
	Service *jit.Service
	Sim     *sim.Provider
	// Agents is the provider of "nftables" hosts: it streams their desired
	// state to `drawbridge agent` and records what the agents report.
	Agents *agenthub.Hub

	store  backend
	http   *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// StartupExpired is how many overdue grants were revoked at start, and
	// StartupExpiry how long that took from the start of Start.
	StartupExpired int
	StartupExpiry  time.Duration

	// Access holds tokens, roles, assignments and the audit log.
	Access *access.Store
	// AdminToken is the bootstrap administrator token when this start
	// created it (the store's first start), else empty; AdminTokenFile is
	// where it was written.
	AdminToken     string
	AdminTokenFile string

	// Webhooks delivers events when Config.Webhook has URLs, else nil.
	Webhooks *webhook.Dispatcher
	// AuditKeyFile is the checkpoint signing key (public key: + ".pub").
	AuditKeyFile string

	// Metrics are served at /metrics; MetricsURL is where (on the API's
	// address unless Config.MetricsListen moved them).
	Metrics    *metrics.Metrics
	MetricsURL string
	ops        ops

	certs *certReloader // nil without TLS
}

// NewID returns a 128-bit identifier in hex: 48 bits of Unix milliseconds
// then 80 random bits (the layout of UUIDv7 and ULID). IDs are primary keys
// of the requests and grants tables; starting with the time makes each
// insert land on the right edge of the B-tree instead of a random leaf, so
// a commit writes a few pages instead of one per row, and listing by ID is
// roughly listing by creation time. 80 random bits keep IDs unguessable
// and collisions within a millisecond out of reach.
func NewID() string {
	return newIDAt(time.Now())
}

func newIDAt(t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (8 * (5 - i)))
	}
	if _, err := rand.Read(b[6:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// backend is what a server needs from its store.
type backend interface {
	jit.Store
	store.ObjectStore
	Close() error
}

// openStore opens PostgreSQL for a postgres:// or postgresql:// DSN and
// SQLite for anything else.
func openStore(ctx context.Context, db string, o sqlite.Options) (backend, error) {
	if postgres.IsDSN(db) {
		// postgres.Open names host and database but never the password.
		return postgres.Open(ctx, db)
	}
	st, err := sqlite.OpenWith(ctx, db, o)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", db, err)
	}
	return st, nil
}

// Start opens the store, revokes grants that fell due while no server ran,
// and serves the API. Stop it with Close.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	began := time.Now()
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
	var certs *certReloader
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		var err error
		if certs, err = newCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, cfg.Logger); err != nil {
			return nil, err
		}
	}
	st, err := openStore(ctx, cfg.DBPath, cfg.sqliteOptions)
	if err != nil {
		return nil, err
	}
	if testWrapStore != nil {
		st = testWrapStore(st)
	}
	m := metrics.New()
	simProv := sim.New(st)
	hub := agenthub.New()
	var hooks *webhook.Dispatcher
	events := fanOut{m, eventLog{cfg.Logger}}
	if len(cfg.Webhook.URLs) > 0 {
		opt := cfg.Webhook
		if opt.Logger == nil {
			opt.Logger = cfg.Logger
		}
		if hooks, err = webhook.New(opt); err != nil {
			st.Close()
			return nil, err
		}
		events = append(events, hooks)
	}
	providers := jit.ProviderMap{inventory.ProviderSim: simProv, inventory.ProviderNftables: issuingHub{hub, m}}
	for name, p := range cfg.ExtraProviders {
		providers[name] = p
	}
	awsRT, err := addAWSProvider(ctx, cfg, st, providers)
	if err != nil {
		if hooks != nil {
			hctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = hooks.Close(hctx)
			cancel()
		}
		st.Close()
		return nil, err
	}
	svc := jit.NewService(jit.Config{
		Store:     timedStore{st, m},
		Providers: m.WrapProviders(providers),
		Clock:     clock.Real{},
		NewID:     NewID,
		Events:    events,

		ApprovalTimeout: cfg.ApprovalTimeout,
	})
	hub.SetReconciler(svc.ReconcileVM)
	hub.SetReporter(m.WrapReporter(inventory.ProviderNftables, svc.ReportObserved))
	hub.SetDriftRecorder(func(ctx context.Context, vmID string, d agenthub.Drift) error {
		if d.Restored != "" {
			m.DriftRepaired(inventory.ProviderNftables)
		}
		return svc.RecordDrift(ctx, vmID, jit.DriftRecord{SeenAt: d.Time, Found: d.Found, Restored: d.Restored, Error: d.Error})
	})
	s := &Server{Service: svc, Sim: simProv, Agents: hub, store: st, Webhooks: hooks, Metrics: m}

	fail := func() {
		if hooks != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = hooks.Close(ctx)
			cancel()
		}
	}

	// Overdue grants first: a restarted server closes what fell due while
	// it was down before it does anything else.
	n, err := svc.ExpireDue(ctx)
	s.StartupExpired, s.StartupExpiry = n, time.Since(began)
	if err != nil {
		cfg.Logger.Error("revoking overdue grants at start", "err", err)
	}
	if n > 0 {
		cfg.Logger.Info("revoked grants that fell due while the server was down", "count", n, "took", s.StartupExpiry)
	}

	if cfg.SampleInventory {
		vms, err := svc.ListVMs(ctx)
		if err != nil {
			fail()
			st.Close()
			return nil, err
		}
		if len(vms) == 0 {
			if err := svc.ApplyInventory(ctx, inventory.Sample()); err != nil {
				fail()
				st.Close()
				return nil, fmt.Errorf("load sample inventory: %w", err)
			}
		}
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		fail()
		st.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	acc := access.New(st, nil)
	s.Access = acc
	authn, authz, err := s.setupAuth(ctx, cfg, acc)
	if err != nil {
		ln.Close()
		fail()
		st.Close()
		return nil, err
	}
	var sink jit.EventSink
	if hooks != nil {
		sink = hooks
	}
	cp, keyFile, err := startCheckpointer(ctx, cfg, acc, sink)
	s.AuditKeyFile = keyFile
	if err != nil {
		ln.Close()
		fail()
		st.Close()
		return nil, err
	}
	apiServer := api.New(api.Config{
		Authenticator:  authn,
		Authorizer:     authz,
		Auditor:        acc,
		Access:         acc,
		FailureLimiter: auth.NewFailureLimiter(10, 6*time.Second, 0),
		RefusalLimiter: cfg.RefusalLimiter,
		AuditPublicKey: cp.public(),
		Service:        svc,
		Network:        simProv,
		Logger:         cfg.Logger,
		TrustedProxies: cfg.TrustedProxies,
		Agents:         observedAgents{hub, m, cfg.Logger},
		AzurePageSize:  cfg.AzurePageSize,
	})
	handler, err := s.withConsole(ctx, cfg, acc, authz, apiServer.Handler())
	if err != nil {
		ln.Close()
		fail()
		st.Close()
		return nil, err
	}
	s.URL = "http://" + ln.Addr().String()
	if certs != nil {
		s.certs = certs
		s.URL = "https://" + ln.Addr().String()
	}
	if err := s.serveOps(cfg, apiServer, handler, ln); err != nil {
		ln.Close()
		fail()
		st.Close()
		return nil, err
	}
	if certs != nil {
		s.http.TLSConfig = certs.tlsConfig()
	}

	jobCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(3)
	s.ops.ready.expiry.Store(true)
	go func() {
		defer s.wg.Done()
		defer s.ops.ready.expiry.Store(false)
		svc.RunExpiry(jobCtx, func(err error) { cfg.Logger.Error("expiry", "err", err) })
	}()
	go func() {
		defer s.wg.Done()
		svc.RunResync(jobCtx, cfg.ResyncInterval, func(vm string, err error) { cfg.Logger.Warn("reconcile failed", "vm", vm, "err", err) })
	}()
	go func() {
		defer s.wg.Done()
		serve := s.http.Serve
		if s.certs != nil {
			serve = func(ln net.Listener) error { return s.http.ServeTLS(ln, "", "") }
		}
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("http server", "err", err)
		}
	}()
	startReplicaJobs(jobCtx, &s.wg, st, svc, hub, cfg.Logger)
	runAuditJobs(jobCtx, &s.wg, apiServer, cp)
	startAWSJobs(jobCtx, &s.wg, cfg, awsRT, svc)
	return s, nil
}

// Close stops serving, stops the jobs and closes the store. /readyz
// answers 503 from the start; in-flight requests finish (within
// Config.ShutdownTimeout) and agent streams end cleanly before the jobs
// stop and the store closes.
func (s *Server) Close() error {
	s.ops.ready.stopping.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), s.ops.shutdownTimeout)
	defer cancel()
	s.Agents.Close() // end agent streams, or Shutdown waits for them
	err := s.http.Shutdown(ctx)
	if s.ops.metricsHTTP != nil {
		err = errors.Join(err, s.ops.metricsHTTP.Shutdown(ctx))
	}
	s.cancel()
	s.wg.Wait()
	if s.Webhooks != nil {
		// Events of the last changes go out before the process ends, for
		// a bounded time.
		// What is abandoned is logged per event; it is not a close failure.
		hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.Webhooks.Close(hctx)
		hcancel()
	}
	return errors.Join(err, s.store.Close())
}
