package server_test

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/auth/oidctest"
	"github.com/drawbridge/drawbridge/internal/server"
)

// idToken signs an ID token from iss for sub in groups, valid for an hour
// from now; over replaces (or, with nil, removes) claims.
func idToken(t *testing.T, iss *oidctest.Issuer, key *rsa.PrivateKey, sub string, groups []string, over map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{"iss": iss.URL, "aud": "drawbridge", "sub": sub, "groups": groups,
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()}
	for k, v := range over {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	return oidctest.Sign(t, key, iss.KeyID, claims)
}

// An OIDC user reaches the API with an ID token alone: their groups claim
// is what RBAC checks, the request is recorded under their subject, and a
// token that is expired, for another audience or signed by another key is
// refused with 401 and changes nothing.
func TestOIDCThroughTheAPI(t *testing.T) {
	iss := oidctest.NewIssuer(t)
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db"), SampleInventory: true,
		OIDC: &auth.OIDCConfig{IssuerURL: iss.URL, ClientID: "drawbridge"},
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

	alice := idToken(t, iss, iss.Key, "alice@example.com", []string{"ops"}, nil)
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

	otherKey := oidctest.NewKey(t)
	refused := map[string]string{
		"not in the group": idToken(t, iss, iss.Key, "bob@example.com", []string{"finance"}, nil),
		"expired":          idToken(t, iss, iss.Key, "alice@example.com", []string{"ops"}, map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}),
		"other audience":   idToken(t, iss, iss.Key, "alice@example.com", []string{"ops"}, map[string]any{"aud": "someone-else"}),
		"other key":        idToken(t, iss, otherKey, "alice@example.com", []string{"ops"}, nil),
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
