package server_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/server"
)

// oidcIssuer is a local OIDC issuer (discovery and JWKS over loopback)
// that signs ID tokens with its own key.
type oidcIssuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newOIDCIssuer(t *testing.T) *oidcIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	iss := &oidcIssuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss.srv.URL, "jwks_uri": iss.srv.URL + "/keys",
			"authorization_endpoint": iss.srv.URL + "/authorize", "token_endpoint": iss.srv.URL + "/token",
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	iss.srv = httptest.NewServer(mux)
	t.Cleanup(iss.srv.Close)
	return iss
}

// token signs an ID token for sub in groups, valid for an hour from now;
// over replaces (or, with nil, removes) claims.
func (iss *oidcIssuer) token(t *testing.T, key *rsa.PrivateKey, sub string, groups []string, over map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{"iss": iss.srv.URL, "aud": "drawbridge", "sub": sub, "groups": groups,
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range over {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
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

// An OIDC user reaches the API with an ID token alone: their groups claim
// is what RBAC checks, the request is recorded under their subject, and a
// token that is expired, for another audience or signed by another key is
// refused with 401 and changes nothing.
func TestOIDCThroughTheAPI(t *testing.T) {
	iss := newOIDCIssuer(t)
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db"), SampleInventory: true,
		OIDC: &auth.OIDCConfig{IssuerURL: iss.srv.URL, ClientID: "drawbridge"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e := &httpEnv{t: t, srv: srv, admin: srv.AdminToken}
	e.must(e.admin, "PUT", webPol, policyBody(webVM), 200)
	e.must(e.admin, "POST", "/drawbridge/v1/roleAssignments", map[string]string{
		"roleDefinitionName": "JIT Network Access Requester", "principalName": "ops", "principalType": "Group", "scope": azureRG}, 201)
	req := map[string]any{"vm": webVM, "ports": []int{22}, "duration": "PT1H", "source": "198.18.7.7"}

	alice := iss.token(t, iss.key, "alice@example.com", []string{"ops"}, nil)
	var rr struct{ Requestor string }
	if err := json.Unmarshal(e.must(alice, "POST", "/drawbridge/v1/requests", req, 202), &rr); err != nil {
		t.Fatal(err)
	}
	if rr.Requestor != "alice@example.com" {
		t.Errorf("requestor = %q, want the token's subject", rr.Requestor)
	}
	// The same group's role does not reach a VM outside its scope.
	if st, code, body := e.call(alice, "POST", "/drawbridge/v1/requests", map[string]any{"vm": bastion, "ports": []int{22}, "duration": "PT1H", "source": "198.18.7.7"}); st != 403 {
		t.Errorf("request outside the group's scope: %d %s %s", st, code, body)
	}

	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]string{
		"not in the group": iss.token(t, iss.key, "bob@example.com", []string{"finance"}, nil),
		"expired":          iss.token(t, iss.key, "alice@example.com", []string{"ops"}, map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}),
		"other audience":   iss.token(t, iss.key, "alice@example.com", []string{"ops"}, map[string]any{"aud": "someone-else"}),
		"other key":        iss.token(t, otherKey, "alice@example.com", []string{"ops"}, nil),
		"not a token":      "not-a-jwt",
	}
	want := map[string]int{"not in the group": 403}
	before := e.must(e.admin, "GET", "/drawbridge/v1/grants", nil, 200)
	for name, tok := range refused {
		st, code, body := e.call(tok, "POST", "/drawbridge/v1/requests", req)
		w := want[name]
		if w == 0 {
			w = 401
		}
		if st != w {
			t.Errorf("%s: status %d (%s %s), want %d", name, st, code, body, w)
		}
	}
	if after := e.must(e.admin, "GET", "/drawbridge/v1/grants", nil, 200); string(after) != string(before) {
		t.Errorf("refused OIDC calls changed the grants:\n%s\n%s", before, after)
	}

	// The audit log names the OIDC subject for the request it accepted.
	var list struct{ Value []audit.Record }
	if err := json.Unmarshal(e.must(e.admin, "GET", "/drawbridge/v1/audit?principal=alice@example.com", nil, 200), &list); err != nil {
		t.Fatal(err)
	}
	recs := list.Value
	found := false
	for _, r := range recs {
		if r.Operation == "initiate" && r.Result == audit.Succeeded && strings.EqualFold(r.Principal, "alice@example.com") {
			found = true
		}
	}
	if !found {
		t.Errorf("no succeeded initiate record for the OIDC user in %+v", recs)
	}
}
