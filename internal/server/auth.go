package server

import (
	"context"
	"path/filepath"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/store/postgres"
)

// DefaultAdminTokenFile is where the bootstrap token goes when the
// configuration names no file: beside a SQLite database, or in the working
// directory for PostgreSQL.
func DefaultAdminTokenFile(db string) string {
	if postgres.IsDSN(db) {
		return "drawbridge.admin-token"
	}
	return filepath.Clean(db) + ".admin-token"
}

// setupAuth builds the authenticator and authorizer, issuing the bootstrap
// administrator token on the store's first start.
func (s *Server) setupAuth(ctx context.Context, cfg Config, acc *access.Store) (api.Authenticator, api.Authorizer, error) {
	if cfg.Insecure {
		cfg.Logger.Warn("authentication is OFF (insecure mode): every caller may do everything")
		return api.LocalPrincipal{Name: "local"}, api.AllowAll{}, nil
	}
	path := cfg.AdminTokenFile
	if path == "" {
		path = DefaultAdminTokenFile(cfg.DBPath)
	}
	s.AdminTokenFile = path
	tok, err := acc.Bootstrap(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	s.AdminToken = tok
	if tok != "" {
		cfg.Logger.Info("first start: wrote the bootstrap administrator token (Owner at /); use it with --token or DRAWBRIDGE_TOKEN", "file", path, "principal", access.BootstrapPrincipal)
	}
	authn := api.BearerAuthenticator{Tokens: acc}
	if cfg.OIDC != nil {
		v, err := auth.NewOIDCVerifier(ctx, cfg.oidcWithCLI())
		if err != nil {
			return nil, nil, err
		}
		authn.OIDC = v
	}
	return authn, acc, nil
}
