package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/auth/oidctest"
	"github.com/drawbridge/drawbridge/internal/server"
)

func getLoginConfig(t *testing.T, base string) api.LoginConfig {
	t.Helper()
	resp, err := http.Get(base + "/drawbridge/v1/login") // no token: asked before signing in
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var lc api.LoginConfig
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&lc) != nil {
		t.Fatalf("GET /drawbridge/v1/login: %s", resp.Status)
	}
	return lc
}

// GET /drawbridge/v1/login answers without a token: the issuer and the
// CLI's public client (default: the server's own client ID, openid and
// offline_access), or nothing without an issuer. ID tokens issued to the
// CLI's client are accepted like the server's own; other audiences not.
func TestLoginConfigAdvertised(t *testing.T) {
	start := func(cfg server.Config) *server.Server {
		cfg.Listen, cfg.DBPath, cfg.SampleInventory = "127.0.0.1:0", filepath.Join(t.TempDir(), "d.db"), true
		srv, err := server.Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		return srv
	}
	if lc := getLoginConfig(t, start(server.Config{}).URL); !reflect.DeepEqual(lc, api.LoginConfig{}) {
		t.Errorf("without an issuer: %+v; want empty", lc)
	}
	iss := oidctest.NewIssuer(t)
	plain := start(server.Config{OIDC: &auth.OIDCConfig{IssuerURL: iss.URL, ClientID: "drawbridge"}})
	want := api.LoginConfig{Issuer: iss.URL, ClientID: "drawbridge", Scopes: []string{"openid", "offline_access"}}
	if lc := getLoginConfig(t, plain.URL); !reflect.DeepEqual(lc, want) {
		t.Errorf("defaults: %+v; want %+v", lc, want)
	}
	srv := start(server.Config{OIDC: &auth.OIDCConfig{IssuerURL: iss.URL, ClientID: "drawbridge"},
		OIDCCLI: server.OIDCCLIConfig{ClientID: "drawbridge-cli", Scopes: []string{"openid", "offline_access", "groups"}}})
	want = api.LoginConfig{Issuer: iss.URL, ClientID: "drawbridge-cli", Scopes: []string{"openid", "offline_access", "groups"}}
	if lc := getLoginConfig(t, srv.URL); !reflect.DeepEqual(lc, want) {
		t.Errorf("configured: %+v; want %+v", lc, want)
	}
	for aud, code := range map[string]int{"drawbridge": 200, "drawbridge-cli": 200, "someone-else": 401} {
		req, _ := http.NewRequest("GET", srv.URL+"/drawbridge/v1/vms", nil)
		req.Header.Set("Authorization", "Bearer "+idToken(t, iss, iss.Key, "alice", nil, map[string]any{"aud": aud}))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Errorf("ID token for %s: %s; want %d", aud, resp.Status, code)
		}
	}
	// The CLI's client is only accepted where it is configured.
	req, _ := http.NewRequest("GET", plain.URL+"/drawbridge/v1/vms", nil)
	req.Header.Set("Authorization", "Bearer "+idToken(t, iss, iss.Key, "alice", nil, map[string]any{"aud": "drawbridge-cli"}))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("CLI audience on a server without --oidc-cli-client-id: %s; want 401", resp.Status)
	}
}
