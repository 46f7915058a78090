package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/auth/oidctest"
	"github.com/drawbridge/drawbridge/internal/server"
)

// oidcWorld is a fake OIDC issuer (device flow, rotating refresh tokens), a
// server that trusts it, and one clock for all three parties: the issuer
// signs, the server checks expiry and the CLI decides to refresh by it.
type oidcWorld struct {
	url    string
	iss    *oidctest.Issuer
	dev    *oidctest.Device
	offset atomic.Int64 // added to the real time by everyone
	skew   atomic.Int64 // added again by the CLI alone
	env    map[string]string
	path   string        // the CLI's config file
	log    *lockedBuffer // the server's log, at debug level
}

const oidcUser = "erin@example.com"

func newOIDCWorld(t *testing.T) *oidcWorld {
	w := &oidcWorld{iss: oidctest.NewIssuer(t), log: &lockedBuffer{}}
	now := func() time.Time { return time.Now().Add(time.Duration(w.offset.Load())) }
	w.dev = w.iss.EnableDevice(t, "drawbridge-cli", oidcUser)
	w.dev.Groups[oidcUser] = []string{"jit-users"}
	w.dev.Lifetime = 10 * time.Minute
	w.dev.Now = now
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db"), SampleInventory: true,
		OIDC:    &auth.OIDCConfig{IssuerURL: w.iss.URL, ClientID: "drawbridge", Now: now},
		OIDCCLI: server.OIDCCLIConfig{ClientID: "drawbridge-cli"},
		Logger:  slog.New(slog.NewTextHandler(w.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	tokensMu.Lock()
	tokens[srv.URL] = srv.AdminToken
	tokensMu.Unlock()
	w.url = srv.URL
	ok(t, w.url, "role", "assign", "--role", "JIT Network Access Requester", "--principal", "jit-users", "--principal-type", "group", "--scope", demoRG)

	old := oidcNow
	oidcNow = func() time.Time { return now().Add(time.Duration(w.skew.Load())) }
	t.Cleanup(func() { oidcNow = old })
	dir := t.TempDir()
	w.env = map[string]string{"XDG_CONFIG_HOME": dir}
	w.path = filepath.Join(dir, "drawbridge", "config.json")
	return w
}

// run is the CLI with the world's environment only (no admin token).
func (w *oidcWorld) run(args ...string) result {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, func(k string) string { return w.env[k] })
	return result{out.String(), errb.String(), code}
}

func (w *oidcWorld) saved(t *testing.T, name string) cliContext {
	t.Helper()
	fi, err := os.Stat(w.path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config %s: %v, mode %v; want 0600", w.path, err, fi.Mode())
	}
	var cfg cliConfig
	data, _ := os.ReadFile(w.path)
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Contexts[name]
}

// The whole life of an OIDC sign-in: the device flow (pending, slow_down
// honoured, then approved), commands as the OIDC principal with the role
// its group holds, a refresh before the token lapses, a refresh after a
// 401 (the CLI's clock behind the server's), and "run drawbridge login"
// once the issuer refuses the refresh token. No secret reaches the output.
func TestOIDCDeviceLoginAndRefresh(t *testing.T) {
	w := newOIDCWorld(t)
	var outputs []string
	runOK := func(args ...string) result {
		t.Helper()
		r := w.run(args...)
		outputs = append(outputs, r.stdout, r.stderr)
		if r.code != 0 {
			t.Fatalf("drawbridge %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
		return r
	}
	if r := w.run("--server", w.url, "-o", "json", "vm", "list"); r.code != exitAuth {
		t.Fatalf("before login: %+v", r) // no credential at all
	}

	w.dev.Script = []string{"authorization_pending", "slow_down"}
	r := runOK("login", "--server", w.url, "--context", "erin")
	for _, want := range []string{w.iss.URL + "/activate", "WDJB-MJHT", "user_code=WDJB-MJHT"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("login prompt lacks %q:\n%s", want, r.stderr)
		}
	}
	polls := w.dev.Polls()
	if len(polls) != 3 {
		t.Fatalf("polls = %d; want 3 (pending, slow_down, approved)", len(polls))
	}
	if gap := polls[1].Sub(polls[0]); gap < 900*time.Millisecond {
		t.Errorf("second poll %v after the first; the interval is 1 s", gap)
	}
	if gap := polls[2].Sub(polls[1]); gap < 5900*time.Millisecond {
		t.Errorf("poll after slow_down came %v later; want the interval raised by 5 s (6 s)", gap)
	}
	first := w.saved(t, "erin")
	if first.RefreshToken == "" || first.Token == "" || first.TokenURL != w.iss.URL+"/token" || first.Server != w.url {
		t.Fatalf("saved context: %+v", first)
	}
	if d := time.Until(first.Expiry); d < 9*time.Minute || d > 11*time.Minute {
		t.Errorf("saved expiry in %v; want the ID token's 10 minutes", d)
	}

	// As erin, through her group's role at demo-rg only.
	vms := decodeJSON[[]api.VMSummary](t, runOK("-o", "json", "vm", "list").stdout)
	if len(vms) == 0 {
		t.Fatal("erin sees no VM")
	}
	for _, vm := range vms {
		if !strings.HasPrefix(vm.ID, demoRG+"/") {
			t.Errorf("erin sees %s, outside her group's scope", vm.ID)
		}
	}

	// 9m30s later the token has 30 s left: refreshed before the command.
	w.offset.Add(int64(9*time.Minute + 30*time.Second))
	runOK("vm", "list")
	second := w.saved(t, "erin")
	if w.dev.Refreshes() != 1 || second.Token == first.Token || second.RefreshToken == first.RefreshToken || !second.Expiry.After(first.Expiry) {
		t.Fatalf("after the early refresh: %d refreshes, token changed %v, refresh token rotated %v, expiry %v → %v",
			w.dev.Refreshes(), second.Token != first.Token, second.RefreshToken != first.RefreshToken, first.Expiry, second.Expiry)
	}
	runOK("vm", "list") // a fresh token is not refreshed again
	if w.dev.Refreshes() != 1 {
		t.Fatalf("refreshes = %d; a token with minutes left was refreshed", w.dev.Refreshes())
	}

	// The CLI's clock runs 5 minutes behind: it thinks the token good,
	// the server answers 401, the CLI refreshes once and repeats the call.
	w.skew.Store(int64(-5 * time.Minute))
	w.offset.Add(int64(10*time.Minute + 30*time.Second))
	runOK("vm", "list")
	if third := w.saved(t, "erin"); w.dev.Refreshes() != 2 || third.Token == second.Token {
		t.Fatalf("after a 401: %d refreshes, token changed %v", w.dev.Refreshes(), third.Token != second.Token)
	}
	w.skew.Store(0)

	// The issuer revokes the session: the next expiry ends the sign-in.
	w.dev.RevokeRefreshTokens()
	w.offset.Add(int64(11 * time.Minute))
	r = w.run("vm", "list")
	outputs = append(outputs, r.stdout, r.stderr)
	if r.code != exitAuth || !strings.Contains(r.stderr, "run drawbridge login") {
		t.Fatalf("refresh refused: %+v; want exit %d and 'run drawbridge login'", r, exitAuth)
	}

	final := w.saved(t, "erin")
	secrets := []string{first.Token, first.RefreshToken, second.Token, second.RefreshToken, final.Token, final.RefreshToken}
	if !strings.Contains(w.log.String(), "path=/drawbridge/v1/vms") {
		t.Fatalf("the server's log has none of these calls:\n%s", w.log.String())
	}
	for _, out := range append(outputs, w.log.String()) {
		for _, s := range secrets {
			if s != "" && strings.Contains(out, s) {
				t.Fatalf("a token reached the output:\n%s", out)
			}
		}
	}
}

// A denied sign-in and a lapsed code end with their own exit codes and
// save nothing; --token-stdin skips the device flow for scripts.
func TestOIDCDeviceLoginRefusals(t *testing.T) {
	w := newOIDCWorld(t)
	w.dev.Script = []string{"authorization_pending", "access_denied"}
	r := w.run("login", "--server", w.url, "--context", "denied")
	if r.code != exitPermission || !strings.Contains(r.stderr, "denied") {
		t.Fatalf("access_denied: %+v; want exit %d", r, exitPermission)
	}
	w.dev.Script = []string{"expired_token"}
	r = w.run("login", "--server", w.url, "--context", "late")
	if r.code != exitAuth || !strings.Contains(r.stderr, "expired") || !strings.Contains(r.stderr, "drawbridge login") {
		t.Fatalf("expired_token: %+v; want exit %d", r, exitAuth)
	}
	if _, err := os.Stat(w.path); !os.IsNotExist(err) {
		t.Fatalf("a refused sign-in wrote %s (%v)", w.path, err)
	}
	if r := w.run("login", "--server", w.url, "--token", tokenFor(w.url), "--context", "admin"); r.code != 0 || len(w.dev.Polls()) != 3 {
		t.Fatalf("login --token with an issuer: %+v, %d polls", r, len(w.dev.Polls()))
	}
	if c := w.saved(t, "admin"); c.Token != tokenFor(w.url) || c.RefreshToken != "" {
		t.Fatalf("a pasted token saved as %+v", c)
	}
}

// The CLI client's flags need an issuer, and scopes that bring an ID token.
func TestOIDCCLIFlagsChecked(t *testing.T) {
	db := filepath.Join(t.TempDir(), "d.db")
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"server", "--db", db, "--listen", "127.0.0.1:0", "--oidc-cli-client-id", "cli"}, &out, &errb, func(string) string { return "" })
	if code == 0 || !strings.Contains(errb.String(), "--oidc-cli-client-id") {
		t.Fatalf("--oidc-cli-client-id without an issuer: exit %d %q", code, errb.String())
	}
	withIssuer := server.Config{OIDC: &auth.OIDCConfig{IssuerURL: "https://idp.example", ClientID: "drawbridge"}}
	for scopes, wantErr := range map[string]string{"openid,offline_access": "", "offline_access": "must include openid", "openid,a b": "not a scope"} {
		cfg := withIssuer
		cfg.OIDCCLI.Scopes = strings.Split(scopes, ",")
		err := checkOIDCCLI(cfg)
		if (err == nil) != (wantErr == "") || err != nil && (!strings.Contains(err.Error(), wantErr) || exitCode(err) != exitUsage) {
			t.Errorf("--oidc-cli-scopes %s: %v; want %q", scopes, err, wantErr)
		}
	}
}

// Commands started together on a token about to lapse: one spends the
// single-use refresh token, the others take the token it saved instead of
// failing, and the config stays one valid document.
func TestOIDCConcurrentRefresh(t *testing.T) {
	w := newOIDCWorld(t)
	if r := w.run("login", "--server", w.url); r.code != 0 {
		t.Fatalf("login: %+v", r)
	}
	w.offset.Add(int64(9*time.Minute + 30*time.Second))
	const n = 4
	results := make(chan result, n)
	for range n {
		go func() { results <- w.run("vm", "list") }()
	}
	for range n {
		if r := <-results; r.code != 0 {
			t.Errorf("concurrent vm list: %+v", r)
		}
	}
	if got := w.dev.Refreshes(); got != 1 {
		t.Errorf("refreshes = %d; want 1 (the rotated refresh token is spent once)", got)
	}
	if c := w.saved(t, "default"); time.Until(c.Expiry) < 15*time.Minute { // 9m30s ahead, then 10 minutes
		t.Errorf("saved expiry %v: the refreshed token was not kept", c.Expiry)
	}
}
