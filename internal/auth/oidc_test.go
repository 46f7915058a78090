package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/drawbridge/drawbridge/internal/auth/oidctest"
)

var oidcNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// testIssuer is the local issuer (oidctest) with the claims these tests start from.
type testIssuer struct{ *oidctest.Issuer }

func newTestIssuer(t *testing.T) *testIssuer { return &testIssuer{oidctest.NewIssuer(t)} }

func (iss *testIssuer) claims(over map[string]any) map[string]any {
	c := map[string]any{
		"iss":    iss.URL,
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
	cfg.IssuerURL = iss.URL
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
			got, err := v.Verify(context.Background(), oidctest.Sign(t, iss.Key, iss.KeyID, iss.claims(c.over)))
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
	other := oidctest.NewKey(t)
	b64 := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(iss.claims(nil))
	good := oidctest.Sign(t, iss.Key, iss.KeyID, iss.claims(nil))
	parts := strings.Split(good, ".")
	// HS256 "signed" with the issuer's public key as the HMAC secret: the
	// classic algorithm-confusion forgery.
	hsSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(iss.Key.PublicKey.N.Bytes())}, nil)
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
		{"expired", oidctest.Sign(t, iss.Key, iss.KeyID, iss.claims(map[string]any{"exp": oidcNow.Add(-time.Minute).Unix()})), "expired"},
		{"expired one second ago", oidctest.Sign(t, iss.Key, iss.KeyID, iss.claims(map[string]any{"exp": oidcNow.Unix() - 1})), "expired"},
		{"wrong audience", oidctest.Sign(t, iss.Key, iss.KeyID, iss.claims(map[string]any{"aud": "someone-else"})), "audience"},
		{"wrong issuer", oidctest.Sign(t, iss.Key, iss.KeyID, iss.claims(map[string]any{"iss": "https://evil.example"})), "different provider"},
		{"signed by another key under the issuer's key ID", oidctest.Sign(t, other, iss.KeyID, iss.claims(nil)), "signature"},
		{"signed by another key under an unknown key ID", oidctest.Sign(t, other, "k2", iss.claims(nil)), "signature"},
		{"alg none", b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64(payload) + ".", "none"},
		{"alg none with the original signature", b64([]byte(`{"alg":"none","kid":"k1"}`)) + "." + parts[1] + "." + parts[2], ""},
		{"HS256 with the public key as secret", hs, ""},
		{"payload swapped under a valid signature", parts[0] + "." + b64([]byte(`{"iss":"`+iss.URL+`","aud":"drawbridge","sub":"root","exp":9999999999}`)) + "." + parts[2], "signature"},
		{"no name claim", oidctest.Sign(t, iss.Key, iss.KeyID, iss.claims(map[string]any{"sub": nil})), `claim "sub"`},
		{"groups of the wrong type", oidctest.Sign(t, iss.Key, iss.KeyID, iss.claims(map[string]any{"groups": 7})), `claim "groups" (groups) must be a string or an array of strings`},
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
		{"no client ID", OIDCConfig{IssuerURL: iss.URL}, "oidc client ID: must not be empty"},
		{"alg none configured", OIDCConfig{IssuerURL: iss.URL, ClientID: "x", SigningAlgs: []string{"RS256", "none"}}, `"none" is not allowed`},
		{"issuer mismatch", OIDCConfig{IssuerURL: iss.URL + "/", ClientID: "x"}, "oidc issuer"},
		{"no discovery there", OIDCConfig{IssuerURL: iss.URL + "/nothing", ClientID: "x"}, "404"},
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
