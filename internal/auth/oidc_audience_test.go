package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/auth/oidctest"
)

// With Audiences (the CLI's public client), tokens for the server's client
// or any listed one are accepted; a token for another client, or one with
// no audience, still is not.
func TestOIDCFurtherAudiences(t *testing.T) {
	iss := newTestIssuer(t)
	v := newVerifier(t, iss, OIDCConfig{Audiences: []string{"drawbridge-cli"}})
	for _, aud := range []any{"drawbridge", "drawbridge-cli", []string{"other", "drawbridge-cli"}} {
		if _, err := v.Verify(context.Background(), oidctest.Sign(t, iss.Key, iss.KeyID, iss.claims(map[string]any{"aud": aud}))); err != nil {
			t.Errorf("aud %v: %v", aud, err)
		}
	}
	for _, aud := range []any{"someone-else", []string{"other", ""}, nil} {
		_, err := v.Verify(context.Background(), oidctest.Sign(t, iss.Key, iss.KeyID, iss.claims(map[string]any{"aud": aud})))
		if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "audience") {
			t.Errorf("aud %v: %v; want an audience refusal", aud, err)
		}
	}
}
