package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// OIDCConfig configures verification of OIDC ID tokens.
type OIDCConfig struct {
	// IssuerURL is the issuer exactly as it appears in tokens' "iss" claim;
	// its /.well-known/openid-configuration is fetched at start.
	IssuerURL string
	// ClientID is the audience tokens must be issued for ("aud").
	ClientID string
	// Audiences are further client IDs whose tokens are accepted, e.g. the
	// public client the CLI signs in with (device authorization grant).
	Audiences []string
	// NameClaim names the claim that becomes Principal.Name; default "sub".
	// "email" or "preferred_username" are common, but only "sub" is
	// guaranteed unique and stable by the specification.
	NameClaim string
	// GroupsClaim names the claim holding the groups (a string or an array
	// of strings); default "groups". A token without it has no groups.
	GroupsClaim string
	// SigningAlgs restricts the accepted signature algorithms; default: the
	// ones the issuer advertises, else RS256. "none" is never accepted.
	SigningAlgs []string
	// HTTPClient fetches discovery and keys; default http.DefaultClient.
	HTTPClient *http.Client
	// Now is the clock expiry is checked against; default time.Now.
	Now func() time.Time
}

// OIDCVerifier turns an OIDC ID token into a Principal.
type OIDCVerifier struct {
	cfg      OIDCConfig
	verifier *oidc.IDTokenVerifier
}

// NewOIDCVerifier fetches the issuer's discovery document and returns a
// verifier. The issuer's signing keys are fetched when first needed and
// again when a token names a key not seen yet (key rotation).
func NewOIDCVerifier(ctx context.Context, cfg OIDCConfig) (*OIDCVerifier, error) {
	if cfg.IssuerURL == "" {
		return nil, errors.New("oidc issuer: must not be empty")
	}
	if cfg.ClientID == "" {
		return nil, errors.New("oidc client ID: must not be empty (it is the audience tokens must carry)")
	}
	for _, a := range cfg.SigningAlgs {
		if strings.EqualFold(a, "none") {
			return nil, errors.New("oidc signing algorithms: \"none\" is not allowed")
		}
	}
	if cfg.NameClaim == "" {
		cfg.NameClaim = "sub"
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, cfg.HTTPClient)
	}
	provider, err := oidc.NewProvider(ctx, cfg.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("oidc issuer %s: %w", cfg.IssuerURL, err)
	}
	oc := &oidc.Config{ClientID: cfg.ClientID, SupportedSigningAlgs: cfg.SigningAlgs, Now: cfg.Now}
	if len(cfg.Audiences) > 0 {
		oc.SkipClientIDCheck = true // Verify checks the audience against every accepted client
	}
	v := provider.VerifierContext(ctx, oc)
	return &OIDCVerifier{cfg: cfg, verifier: v}, nil
}

// Verify checks the token's signature against the issuer's keys, its
// issuer, audience and expiry, and returns the principal it names. Every
// failure wraps ErrUnauthenticated.
func (v *OIDCVerifier) Verify(ctx context.Context, rawIDToken string) (Principal, error) {
	tok, err := v.verifier.Verify(ctx, rawIDToken)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: oidc token: %v", ErrUnauthenticated, err)
	}
	if len(v.cfg.Audiences) > 0 && !v.acceptedAudience(tok.Audience) {
		return Principal{}, fmt.Errorf("%w: oidc token: audience %q is none of the accepted client IDs", ErrUnauthenticated, tok.Audience)
	}
	var claims map[string]json.RawMessage
	if err := tok.Claims(&claims); err != nil {
		return Principal{}, fmt.Errorf("%w: oidc token claims: %v", ErrUnauthenticated, err)
	}
	var name string
	if raw, ok := claims[v.cfg.NameClaim]; !ok || json.Unmarshal(raw, &name) != nil || strings.TrimSpace(name) == "" {
		return Principal{}, fmt.Errorf("%w: oidc token: claim %q (the principal name) is missing or not a non-empty string", ErrUnauthenticated, v.cfg.NameClaim)
	}
	p := Principal{Name: name}
	if raw, ok := claims[v.cfg.GroupsClaim]; ok && string(raw) != "null" {
		var one string
		if err := json.Unmarshal(raw, &p.Groups); err != nil {
			if json.Unmarshal(raw, &one) != nil {
				return Principal{}, fmt.Errorf("%w: oidc token: claim %q (groups) must be a string or an array of strings", ErrUnauthenticated, v.cfg.GroupsClaim)
			}
			p.Groups = []string{one}
		}
	}
	return p, nil
}

// acceptedAudience reports whether aud names ClientID or one of Audiences.
func (v *OIDCVerifier) acceptedAudience(aud []string) bool {
	for _, a := range aud {
		if a != "" && (a == v.cfg.ClientID || slices.Contains(v.cfg.Audiences, a)) {
			return true
		}
	}
	return false
}
