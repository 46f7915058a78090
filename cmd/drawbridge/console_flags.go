//go:build !drawbridge_client

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/drawbridge/drawbridge/internal/server"
)

// loadOIDCSecret reads the console's OIDC client secret from path (never
// from a flag value, which other users could read from the process list).
func loadOIDCSecret(cfg *server.Config, path string) error {
	if path == "" {
		return nil
	}
	if cfg.OIDC == nil {
		return errors.New("--oidc-client-secret-file: needs --oidc-issuer and --oidc-audience (the client ID)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--oidc-client-secret-file: %w", err)
	}
	secret := bytes.TrimSpace(b)
	if len(secret) == 0 {
		return fmt.Errorf("--oidc-client-secret-file: %s is empty", path)
	}
	cfg.OIDCClientSecret = string(secret)
	return nil
}
