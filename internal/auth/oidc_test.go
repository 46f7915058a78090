package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

var oidcNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// testIssuer is a minimal OIDC issuer: discovery and JWKS over HTTP, and
// a key to sign tokens with.
type testIssuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
	kid string
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	iss := &testIssuer{key: newRSAKey(t), kid: "k1"}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss.srv.URL,
			"jwks_uri":                              iss.srv.URL + "/keys",
			"authorization_endpoint":                iss.srv.URL + "/authorize",
			"token_endpoint":                        iss.srv.URL + "/token",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &iss.key.PublicKey, KeyID: iss.kid, Algorithm: "RS256", Use: "sig"},
		}})
	})
	iss.srv = httptest.NewServer(mux)
	t.Cleanup(iss.srv.Close)
	return iss
}

func newRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sign makes a compact JWS with key under kid.
func sign(t *testing.T, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (iss *testIssuer) claims(over map[string]any) map[string]any {
	c := map[string]any{
		"iss":    iss.srv.URL,
		"aud":    "drawbridge",
		"sub":    "alice",
		"email":  "alice@example.com",
		"groups": []string{"ops", "jit-approvers"},
		"iat":    oidcNow.Add(-time.Minute).Unix(),
		"exp":    oidcNow.Add(time.Hour).Unix(),
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func newVerifier(t *testing.T, iss *testIssuer, cfg OIDCConfig) *OIDCVerifier {
	t.Helper()
	cfg.IssuerURL = iss.srv.URL
	if cfg.ClientID == "" {
		cfg.ClientID = "drawbridge"
	}
	cfg.Now = func() time.Time { return oidcNow }
	v, err := NewOIDCVerifier(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOIDCAccepts(t *testing.T) {
	iss := newTestIssuer(t)
	cases := []struct {
		name string
		cfg  OIDCConfig
		over map[string]any
		want Principal
	}{
		{"defaults: sub and groups", OIDCConfig{}, nil, Principal{Name: "alice", Groups: []string{"ops", "jit-approvers"}}},
		{"email as the name, roles as the groups", OIDCConfig{NameClaim: "email", GroupsClaim: "roles"}, map[string]any{"roles": []string{"admins"}}, Principal{Name: "alice@example.com", Groups: []string{"admins"}}},
		{"a single group as a string", OIDCConfig{}, map[string]any{"groups": "ops"}, Principal{Name: "alice", Groups: []string{"ops"}}},
		{"no groups claim", OIDCConfig{}, map[string]any{"groups": nil}, Principal{Name: "alice"}},
		{"audience in a list", OIDCConfig{}, map[string]any{"aud": []string{"other", "drawbridge"}}, Principal{Name: "alice", Groups: []string{"ops", "jit-approvers"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := newVerifier(t, iss, c.cfg)
			got, err := v.Verify(context.Background(), sign(t, iss.key, iss.kid, iss.claims(c.over)))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestOIDCRejects(t *testing.T) {
	iss := newTestIssuer(t)
	other := newRSAKey(t)
	b64 := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(iss.claims(nil))
	good := sign(t, iss.key, iss.kid, iss.claims(nil))
	parts := strings.Split(good, ".")
	// HS256 "signed" with the issuer's public key as the HMAC secret: the
	// classic algorithm-confusion forgery.
	hsSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(iss.key.PublicKey.N.Bytes())}, nil)
	if err != nil {
		t.Fatal(err)
	}
	hsObj, _ := hsSigner.Sign(payload)
	hs, _ := hsObj.CompactSerialize()

	cases := []struct {
		name  string
		token string
		want  string // part of the error
	}{
		{"expired", sign(t, iss.key, iss.kid, iss.claims(map[string]any{"exp": oidcNow.Add(-time.Minute).Unix()})), "expired"},
		{"expired one second ago", sign(t, iss.key, iss.kid, iss.claims(map[string]any{"exp": oidcNow.Unix() - 1})), "expired"},
		{"wrong audience", sign(t, iss.key, iss.kid, iss.claims(map[string]any{"aud": "someone-else"})), "audience"},
		{"wrong issuer", sign(t, iss.key, iss.kid, iss.claims(map[string]any{"iss": "https://evil.example"})), "different provider"},
		{"signed by another key under the issuer's key ID", sign(t, other, iss.kid, iss.claims(nil)), "signature"},
		{"signed by another key under an unknown key ID", sign(t, other, "k2", iss.claims(nil)), "signature"},
		{"alg none", b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64(payload) + ".", "none"},
		{"alg none with the original signature", b64([]byte(`{"alg":"none","kid":"k1"}`)) + "." + parts[1] + "." + parts[2], ""},
		{"HS256 with the public key as secret", hs, ""},
		{"payload swapped under a valid signature", parts[0] + "." + b64([]byte(`{"iss":"`+iss.srv.URL+`","aud":"drawbridge","sub":"root","exp":9999999999}`)) + "." + parts[2], "signature"},
		{"no name claim", sign(t, iss.key, iss.kid, iss.claims(map[string]any{"sub": nil})), `claim "sub"`},
		{"groups of the wrong type", sign(t, iss.key, iss.kid, iss.claims(map[string]any{"groups": 7})), `claim "groups" (groups) must be a string or an array of strings`},
		{"garbage", "not.a.jwt", ""},
		{"empty", "", ""},
	}
	v := newVerifier(t, iss, OIDCConfig{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := v.Verify(context.Background(), c.token)
			if err == nil {
				t.Fatalf("accepted as %+v", p)
			}
			if !errors.Is(err, ErrUnauthenticated) {
				t.Errorf("error %v does not wrap ErrUnauthenticated", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func TestNewOIDCVerifierConfigErrors(t *testing.T) {
	iss := newTestIssuer(t)
	cases := []struct {
		name string
		cfg  OIDCConfig
		want string
	}{
		{"no issuer", OIDCConfig{ClientID: "x"}, "oidc issuer: must not be empty"},
		{"no client ID", OIDCConfig{IssuerURL: iss.srv.URL}, "oidc client ID: must not be empty"},
		{"alg none configured", OIDCConfig{IssuerURL: iss.srv.URL, ClientID: "x", SigningAlgs: []string{"RS256", "none"}}, `"none" is not allowed`},
		{"issuer mismatch", OIDCConfig{IssuerURL: iss.srv.URL + "/", ClientID: "x"}, "oidc issuer"},
		{"no discovery there", OIDCConfig{IssuerURL: iss.srv.URL + "/nothing", ClientID: "x"}, "404"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := NewOIDCVerifier(context.Background(), c.cfg)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}
