package server

import (
	"encoding/json"
	"net/http"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/auth"
)

// OIDCCLIConfig is the public OIDC client `drawbridge login` runs the
// device authorization grant (RFC 8628) with. Its ID tokens carry its
// client ID as audience, so the server accepts that audience too.
type OIDCCLIConfig struct {
	// ClientID defaults to the server's own (OIDC.ClientID).
	ClientID string
	// Scopes default to openid and offline_access (a refresh token).
	Scopes []string
}

// DefaultCLIScopes are the scopes the CLI asks for unless configured.
var DefaultCLIScopes = []string{"openid", "offline_access"}

// loginConfig is what GET /drawbridge/v1/login answers: empty without an
// issuer (the CLI then asks for an API token).
func (cfg Config) loginConfig() api.LoginConfig {
	if cfg.OIDC == nil {
		return api.LoginConfig{}
	}
	lc := api.LoginConfig{Issuer: cfg.OIDC.IssuerURL, ClientID: cfg.OIDCCLI.ClientID, Scopes: cfg.OIDCCLI.Scopes}
	if lc.ClientID == "" {
		lc.ClientID = cfg.OIDC.ClientID
	}
	if len(lc.Scopes) == 0 {
		lc.Scopes = DefaultCLIScopes
	}
	return lc
}

// oidcWithCLI is the verifier's configuration: the server's client and the
// CLI's, when that is another one.
func (cfg Config) oidcWithCLI() auth.OIDCConfig {
	oc := *cfg.OIDC
	if id := cfg.OIDCCLI.ClientID; id != "" && id != oc.ClientID {
		oc.Audiences = append(append([]string(nil), oc.Audiences...), id)
	}
	return oc
}

// loginConfigHandler serves the login configuration without
// authentication: a CLI asks it before it has any credential. It names
// only public things (the issuer and a public client).
func loginConfigHandler(cfg Config) http.Handler {
	body, err := json.Marshal(cfg.loginConfig())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err != nil { // cannot happen: strings only
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(body)
	})
}
