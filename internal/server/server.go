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
	"io"
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
	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
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
	// NoConsole turns the web console (/console/) off.
	NoConsole bool
	// OIDCClientSecret is the console's OIDC client secret (empty: a
	// public client, PKCE alone); OIDCRedirectURL its registered callback
	// (default: built from the request, http(s)://HOST/console/oidc/callback).
	OIDCClientSecret string
	OIDCRedirectURL  string
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
func openStore(ctx context.Context, db string) (backend, error) {
	if postgres.IsDSN(db) {
		// postgres.Open names host and database but never the password.
		return postgres.Open(ctx, db)
	}
	st, err := sqlite.Open(ctx, db)
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
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.ResyncInterval == 0 {
		cfg.ResyncInterval = 5 * time.Minute
	}
	st, err := openStore(ctx, cfg.DBPath)
	if err != nil {
		return nil, err
	}
	simProv := sim.New(st)
	hub := agenthub.New()
	var hooks *webhook.Dispatcher
	var events jit.EventSink
	if len(cfg.Webhook.URLs) > 0 {
		opt := cfg.Webhook
		if opt.Logger == nil {
			opt.Logger = cfg.Logger
		}
		if hooks, err = webhook.New(opt); err != nil {
			st.Close()
			return nil, err
		}
		events = hooks
	}
	svc := jit.NewService(jit.Config{
		Store:     st,
		Providers: jit.ProviderMap{inventory.ProviderSim: simProv, inventory.ProviderNftables: hub},
		Clock:     clock.Real{},
		NewID:     NewID,
		Events:    events,

		ApprovalTimeout: cfg.ApprovalTimeout,
	})
	hub.SetReconciler(svc.ReconcileVM)
	hub.SetReporter(svc.ReportObserved)
	s := &Server{Service: svc, Sim: simProv, Agents: hub, store: st, Webhooks: hooks}
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
	apiServer := api.New(api.Config{
		Authenticator:  authn,
		Authorizer:     authz,
		Auditor:        acc,
		Access:         acc,
		FailureLimiter: auth.NewFailureLimiter(10, 6*time.Second, 0),
		Service:        svc,
		Network:        simProv,
		Logger:         cfg.Logger,
		TrustedProxies: cfg.TrustedProxies,
		Agents:         hub,
		AzurePageSize:  cfg.AzurePageSize,
	})
	handler, err := s.withConsole(ctx, cfg, acc, authz, apiServer.Handler())
	if err != nil {
		ln.Close()
		fail()
		st.Close()
		return nil, err
	}
	s.http = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	s.URL = "http://" + ln.Addr().String()

	jobCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(3)
	go func() {
		defer s.wg.Done()
		svc.RunExpiry(jobCtx, func(err error) { cfg.Logger.Error("expiry", "err", err) })
	}()
	go func() {
		defer s.wg.Done()
		svc.RunResync(jobCtx, cfg.ResyncInterval, func(vm string, err error) { cfg.Logger.Warn("reconcile failed", "vm", vm, "err", err) })
	}()
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Error("http server", "err", err)
		}
	}()
	startReplicaJobs(jobCtx, &s.wg, st, svc, hub, cfg.Logger)
	return s, nil
}

// Close stops serving, stops the jobs and closes the store.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Agents.Close() // end agent streams, or Shutdown waits for them
	err := s.http.Shutdown(ctx)
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
