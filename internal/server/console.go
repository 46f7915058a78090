package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/console"
)

// withConsole serves the web console under /console/ beside the API (the
// console is off when cfg.NoConsole). "/" redirects a browser to it.
func (s *Server) withConsole(ctx context.Context, cfg Config, acc *access.Store, authz api.Authorizer, apiHandler http.Handler) (http.Handler, error) {
	if cfg.NoConsole {
		return apiHandler, nil
	}
	cc := console.Config{Service: s.Service, Access: acc, Authorizer: authz, Agents: s.Agents,
		TrustedProxies: cfg.TrustedProxies, Logger: cfg.Logger}
	if !cfg.Insecure {
		cc.Tokens = acc
		if cfg.OIDC != nil {
			v, err := auth.NewOIDCVerifier(ctx, *cfg.OIDC)
			if err != nil {
				return nil, err
			}
			cc.OIDC, err = console.NewOIDCLogin(ctx, console.OIDCLoginConfig{IssuerURL: cfg.OIDC.IssuerURL, ClientID: cfg.OIDC.ClientID,
				ClientSecret: cfg.OIDCClientSecret, RedirectURL: cfg.OIDCRedirectURL, Verifier: v, HTTPClient: cfg.OIDC.HTTPClient})
			if err != nil {
				return nil, err
			}
		}
	}
	con, err := console.New(cc)
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, console.Prefix):
			con.ServeHTTP(w, r)
		case r.URL.Path == "/" && r.Method == http.MethodGet:
			http.Redirect(w, r, console.Prefix, http.StatusSeeOther)
		default:
			apiHandler.ServeHTTP(w, r)
		}
	}), nil
}
