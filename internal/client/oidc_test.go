package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/auth/oidctest"
)

// A 401 makes the client ask for a new token once and repeat the call
// with it; a second 401 stands, and a failed refresh is the call's error.
func TestRefreshOn401(t *testing.T) {
	var good atomic.Value
	good.Store("new")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+good.Load().(string) {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"code":"AuthenticationFailed","message":"expired"}}`))
			return
		}
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	c, err := New(srv.URL, "old")
	if err != nil {
		t.Fatal(err)
	}
	refreshes := 0
	c.RefreshOn401(func(context.Context) (string, error) { refreshes++; return "new", nil })
	var out map[string]string
	if err := c.do(context.Background(), "GET", "/x", nil, nil, &out); err != nil || out["status"] != "ok" || refreshes != 1 {
		t.Fatalf("after one refresh: %v %v, %d refreshes", out, err, refreshes)
	}
	if err := c.do(context.Background(), "GET", "/x", nil, nil, nil); err != nil || refreshes != 1 {
		t.Fatalf("the new token is kept: %v, %d refreshes", err, refreshes)
	}
	good.Store("newer")
	if err := c.do(context.Background(), "GET", "/x", nil, nil, nil); StatusCode(err) != 401 || refreshes != 1 {
		t.Fatalf("a second 401: %v, %d refreshes; want the 401 and no second refresh", err, refreshes)
	}

	c2, _ := New(srv.URL, "old")
	boom := errors.New("run drawbridge login")
	c2.RefreshOn401(func(context.Context) (string, error) { return "", boom })
	if err := c2.do(context.Background(), "GET", "/x", nil, nil, nil); !errors.Is(err, boom) {
		t.Fatalf("failed refresh: %v", err)
	}
	c3, _ := New(srv.URL, "old") // no refresher: the 401 as before
	if err := c3.do(context.Background(), "GET", "/x", nil, nil, nil); StatusCode(err) != 401 {
		t.Fatalf("without a refresher: %v", err)
	}
}

// A server older than the login endpoint (404, or 401 from its
// authentication) has no issuer.
func TestLoginConfigOfAnOlderServer(t *testing.T) {
	for _, st := range []int{404, 401} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(st) }))
		c, _ := New(srv.URL, "")
		lc, err := c.LoginConfig(context.Background())
		srv.Close()
		if err != nil || lc.Issuer != "" {
			t.Errorf("%d: %+v %v", st, lc, err)
		}
	}
}

// A refused refresh token wraps ErrRefresh with the issuer's error code,
// never its body; a good one yields a new ID token and rotated refresh
// token, with the ID token's own expiry.
func TestRefreshOIDC(t *testing.T) {
	iss := oidctest.NewIssuer(t)
	d := iss.EnableDevice(t, "cli", "erin")
	d.Lifetime = 7 * time.Minute
	_, err := RefreshOIDC(context.Background(), nil, iss.URL+"/token", "cli", "not-a-refresh-token")
	if !errors.Is(err, ErrRefresh) || !strings.Contains(err.Error(), "invalid_grant") || strings.Contains(err.Error(), "not-a-refresh-token") {
		t.Fatalf("refused: %v", err)
	}
	var prompted DevicePrompt
	toks, err := DeviceLogin(context.Background(), nil, loginCfg(iss.URL), func(p DevicePrompt) { prompted = p })
	if err != nil || prompted.UserCode == "" || toks.RefreshToken == "" {
		t.Fatalf("device login: %+v %v (prompt %+v)", toks, err, prompted)
	}
	again, err := RefreshOIDC(context.Background(), nil, toks.TokenURL, "cli", toks.RefreshToken)
	if err != nil || again.IDToken == toks.IDToken || again.RefreshToken == toks.RefreshToken {
		t.Fatalf("refresh: %v; new ID token %v, rotated %v", err, again.IDToken != toks.IDToken, again.RefreshToken != toks.RefreshToken)
	}
	if d := time.Until(again.Expiry); d < 6*time.Minute || d > 8*time.Minute {
		t.Errorf("expiry in %v; want the ID token's 7 minutes", d)
	}
	if _, err := RefreshOIDC(context.Background(), nil, toks.TokenURL, "cli", toks.RefreshToken); !errors.Is(err, ErrRefresh) {
		t.Fatalf("a used refresh token: %v", err)
	}
}

func loginCfg(issuer string) api.LoginConfig {
	return api.LoginConfig{Issuer: issuer, ClientID: "cli", Scopes: []string{"openid", "offline_access"}}
}

// Discovery must name the issuer asked for; an issuer without a device
// endpoint is refused before any prompt.
func TestDeviceLoginDiscovery(t *testing.T) {
	var issuer, device string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"issuer":"` + issuer + `","token_endpoint":"http://127.0.0.1:1/token","device_authorization_endpoint":"` + device + `"}`))
	}))
	defer srv.Close()
	prompt := func(DevicePrompt) { t.Fatal("prompted") }
	issuer = "https://elsewhere.example"
	if _, err := DeviceLogin(context.Background(), nil, loginCfg(srv.URL), prompt); err == nil || !strings.Contains(err.Error(), "names issuer") {
		t.Errorf("another issuer: %v", err)
	}
	issuer = srv.URL
	if _, err := DeviceLogin(context.Background(), nil, loginCfg(srv.URL), prompt); err == nil || !strings.Contains(err.Error(), "device_authorization_endpoint") {
		t.Errorf("no device endpoint: %v", err)
	}
}
