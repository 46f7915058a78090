//go:build !drawbridge_client

package main

import (
	"errors"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/drawbridge/drawbridge/internal/server"
)

// addOIDCCLIFlags adds the server's flags for the public client that
// `drawbridge login` signs in with (the device authorization grant).
func addOIDCCLIFlags(f *pflag.FlagSet, c *server.OIDCCLIConfig) {
	f.StringVar(&c.ClientID, "oidc-cli-client-id", "", "the public OIDC client (device authorization grant enabled) that drawbridge login signs in with; its ID tokens are accepted too (default: --oidc-audience)")
	f.StringSliceVar(&c.Scopes, "oidc-cli-scopes", nil, "the scopes drawbridge login asks for, comma-separated (default openid,offline_access: offline_access brings the refresh token)")
}

func checkOIDCCLI(cfg server.Config) error {
	if cfg.OIDC == nil && (cfg.OIDCCLI.ClientID != "" || len(cfg.OIDCCLI.Scopes) > 0) {
		return errors.New("--oidc-cli-client-id, --oidc-cli-scopes: need --oidc-issuer and --oidc-audience")
	}
	if sc := cfg.OIDCCLI.Scopes; len(sc) > 0 && !slices.Contains(sc, "openid") {
		return usageError(errors.New("--oidc-cli-scopes: must include openid (the server verifies the ID token)"))
	}
	for _, s := range cfg.OIDCCLI.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\"\\") {
			return usageError(errors.New("--oidc-cli-scopes: " + safeText(s) + " is not a scope"))
		}
	}
	return nil
}
