//go:build !drawbridge_client

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/server"
)

func (a *app) serverCmd() *cobra.Command {
	var (
		cfg               server.Config
		debug             bool
		oidcCfg           auth.OIDCConfig
		webhookSecretFile string
		logFormat         string
		netFlags          serverNetFlags
		az                serverAzure // --azure, --sync (server_azure.go)
		oidcSecretFile    string
	)
	cmd := &cobra.Command{
		Use:   "server --listen ADDR --db PATH [--sample-inventory]",
		Short: "Run the drawbridge server until SIGINT or SIGTERM",
		Long: `Run the drawbridge server: the REST API, the JIT service and its expiry
scheduler, with state in one SQLite file. Grants that fell due while no server
ran are revoked before the API starts serving; the startup log line reports
how many (startup_expired) and how long that took (startup_expiry).`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(a.stderr, logFormat, debug)
			if err != nil {
				return err
			}
			cfg.Logger = log
			if cfg.DBPath == "" {
				return errors.New("--db: a database file path is required")
			}
			if oidcCfg.IssuerURL != "" || oidcCfg.ClientID != "" {
				if oidcCfg.IssuerURL == "" || oidcCfg.ClientID == "" {
					return errors.New("--oidc-issuer and --oidc-audience: give both or neither")
				}
				cfg.OIDC = &oidcCfg
			}
			if err := loadOIDCSecret(&cfg, oidcSecretFile); err != nil {
				return err
			}
			if err := checkOIDCCLI(cfg); err != nil {
				return err
			}
			if err := loadWebhookSecret(&cfg, webhookSecretFile); err != nil {
				return err
			}
			if err := netFlags.apply(&cfg); err != nil {
				return err
			}
			if err := az.configure(&cfg, a.getenv); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv, err := server.Start(ctx, cfg)
			if err != nil {
				return err
			}
			go az.run(ctx, srv.Service, log)
			log.Info("server started", "url", srv.URL, "db", redactDSN(cfg.DBPath),
				"startup_expired", srv.StartupExpired, "startup_expiry", srv.StartupExpiry.String(),
				"startup_expiry_ms", fmt.Sprintf("%.3f", float64(srv.StartupExpiry.Microseconds())/1000))
			if srv.AdminToken != "" {
				fmt.Fprintf(a.stderr, "drawbridge: first start: the administrator token is in %s (readable only by you); use it with --token or DRAWBRIDGE_TOKEN\n", srv.AdminTokenFile)
			}
			reloadOnHUP(ctx, srv, log)
			fmt.Fprintf(a.stdout, "drawbridge server listening on %s\n", srv.URL)
			<-ctx.Done()
			log.Info("shutting down", "reason", context.Cause(ctx))
			return srv.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	f.StringVar(&cfg.DBPath, "db", "drawbridge.db", "SQLite database file, or a PostgreSQL URL (postgres://user:pass@host:5432/db) shared by replicas")
	f.BoolVar(&cfg.SampleInventory, "sample-inventory", true, "load the built-in sample inventory if the database has no VMs (--sample-inventory=false to start empty)")
	f.BoolVar(&debug, "debug", false, "log at debug level")
	f.StringVar(&cfg.AdminTokenFile, "admin-token-file", "", "where the first start writes the bootstrap administrator token, mode 0600 (default: beside the database, DB.admin-token)")
	f.BoolVar(&cfg.NoConsole, "no-console", false, "do not serve the web console (/console/)")
	f.BoolVar(&cfg.Insecure, "insecure-no-auth", false, "turn authentication and authorization off (every caller may do everything; local experiments only)")
	durationFlag(f, &cfg.ApprovalTimeout, "approval-timeout", 0, "how long a request needing approval may stay pending (default 1h)")
	f.StringVar(&oidcCfg.IssuerURL, "oidc-issuer", "", "also accept OIDC ID tokens from this issuer URL")
	f.StringVar(&oidcCfg.ClientID, "oidc-audience", "", "the audience (client ID) OIDC ID tokens must carry")
	f.StringVar(&oidcSecretFile, "oidc-client-secret-file", "", "file holding the web console's OIDC client secret (sign-in with the authorization code flow and PKCE; without it the console signs in as a public client)")
	f.StringVar(&cfg.OIDCRedirectURL, "oidc-redirect-url", "", "the console's OIDC callback as registered with the issuer (default: http(s)://HOST/console/oidc/callback of each request)")
	f.StringVar(&oidcCfg.GroupsClaim, "oidc-groups-claim", "groups", "the OIDC claim holding the caller's groups")
	f.StringVar(&oidcCfg.NameClaim, "oidc-name-claim", "sub", "the OIDC claim naming the principal")
	addOIDCCLIFlags(f, &cfg.OIDCCLI) // login_oidc_server.go
	f.StringArrayVar(&cfg.Webhook.URLs, "webhook-url", nil, "POST signed JSON events (requested, approved, denied, opened, closed) to this URL; repeat for several")
	netFlags.add(cmd, &cfg)
	az.register(f)
	addAWSServerFlags(f, &cfg)
	f.StringVar(&webhookSecretFile, "webhook-secret-file", "", "file holding the HMAC-SHA256 key that signs webhook bodies (required with --webhook-url; surrounding whitespace is ignored)")
	f.StringVar(&cfg.AuditKeyFile, "audit-key", "", "Ed25519 key that signs audit checkpoints, created mode 0600 with its public key beside it (FILE.pub) if missing (default: beside the database, DB.audit-key)")
	f.IntVar(&cfg.CheckpointEvery, "checkpoint-every", 0, "sign the audit log's head after this many records (default 1000; negative: only when the server stops)")
	durationFlag(f, &cfg.CheckpointInterval, "checkpoint-interval", 0, "and at least this often while records are written (default 1m)")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&cfg.MetricsListen, "metrics-listen", "", "serve /metrics on this address only (default: on --listen)")
	durationFlag(f, &cfg.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long SIGTERM waits for in-flight requests before closing")
	a.configurable(cmd)
	return cmd
}

// loadWebhookSecret reads the webhook signing key from path into cfg. The
// key is never taken from a flag value, which other users could read from
// the process list.
func loadWebhookSecret(cfg *server.Config, path string) error {
	switch {
	case len(cfg.Webhook.URLs) == 0 && path == "":
		return nil
	case len(cfg.Webhook.URLs) == 0:
		return errors.New("--webhook-secret-file: no --webhook-url to sign for")
	case path == "":
		return errors.New("--webhook-url: --webhook-secret-file (the signing key) is required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--webhook-secret-file: %w", err)
	}
	key := bytes.TrimSpace(b)
	if len(key) == 0 {
		return fmt.Errorf("--webhook-secret-file: %s is empty", path)
	}
	cfg.Webhook.Secret = key
	return nil
}

// redactDSN hides a password in a PostgreSQL URL before it is logged.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		return u.Redacted()
	}
	return dsn
}
