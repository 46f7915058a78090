// Package oidctest is a local OpenID Connect issuer for tests: discovery and
// the key set served over loopback (httptest), and ID tokens signed with
// its key or any other.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// Issuer is a running test issuer. URL is its issuer identifier ("iss").
type Issuer struct {
	URL   string
	Key   *rsa.PrivateKey
	KeyID string

	mu     sync.Mutex
	login  *Login  // EnableLogin's code flow, if enabled
	device *Device // EnableDevice's device flow and refresh, if enabled
}

// NewIssuer starts an issuer that publishes one RS256 key under KeyID "k1";
// it stops when the test ends.
func NewIssuer(t testing.TB) *Issuer {
	t.Helper()
	iss := &Issuer{Key: NewKey(t), KeyID: "k1"}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss.URL,
			"jwks_uri":                              iss.URL + "/keys",
			"authorization_endpoint":                iss.URL + "/authorize",
			"token_endpoint":                        iss.URL + "/token",
			"device_authorization_endpoint":         iss.URL + "/device",
			"grant_types_supported":                 []string{"authorization_code", "refresh_token", deviceGrant},
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
			{Key: &iss.Key.PublicKey, KeyID: iss.KeyID, Algorithm: "RS256", Use: "sig"},
		}})
	})
	// The code flow answers once EnableLogin has configured a client.
	withLogin := func(h func(*Login, http.ResponseWriter, *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			iss.mu.Lock()
			l := iss.login
			iss.mu.Unlock()
			if l == nil {
				http.NotFound(w, r)
				return
			}
			h(l, w, r)
		}
	}
	mux.HandleFunc("/authorize", withLogin((*Login).authorize))
	loginToken := withLogin((*Login).token)
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if gt := r.PostForm.Get("grant_type"); gt == deviceGrant || gt == "refresh_token" {
			iss.withDevice((*Device).token)(w, r)
			return
		}
		loginToken(w, r)
	})
	mux.HandleFunc("POST /device", iss.withDevice((*Device).authorize))
	srv := httptest.NewServer(mux)
	iss.URL = srv.URL
	t.Cleanup(srv.Close)
	return iss
}

// NewKey returns a fresh 2048-bit RSA key.
func NewKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Sign returns claims as a compact RS256 JWS signed with key under kid.
func Sign(t testing.TB, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
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
