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
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/auth"
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

// openBackend opens PostgreSQL for a postgres:// or postgresql:// DSN and
// SQLite for anything else.
func openBackend(ctx context.Context, db string, o sqlite.Options) (backend, error) {
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
