package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/server"
	"github.com/drawbridge/drawbridge/internal/webhook"
)

// syncBuffer is a log sink shared by the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines decodes the JSON log lines.
func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

const hookKey = "webhook-signing-key-that-must-never-be-logged"

func opsPolicyBody() string {
	return fmt.Sprintf(`{"location":"westeurope","properties":{"virtualMachines":[{"id":%q,"ports":[
		{"number":22,"protocol":"TCP","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]}]}}`, webVM)
}

func opsInitiate(port int, d string) string {
	return fmt.Sprintf(`{"virtualMachines":[{"id":%q,"ports":[{"number":%d,"duration":%q,"allowedSourceAddressPrefix":"198.18.0.7"}]}],"justification":"ops test"}`, webVM, port, d)
}

// do sends one request with the token and request ID (either may be
// empty) and returns status, body and the answered X-Request-Id.
func do(t *testing.T, method, url, token, reqID, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if reqID != "" {
		req.Header.Set(server.HeaderRequestID, reqID)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get(server.HeaderRequestID)
}

// TestMetricsAndLogsAfterAScenario runs a policy put, two accepted
// requests (one expiring after a second), one refused request and a
// revoke through the HTTP API of a real server (SQLite, simulated
// provider, expiry job, a webhook), then scrapes /metrics and reads the
// JSON log.
func TestMetricsAndLogsAfterAScenario(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer hook.Close()
	logs := &syncBuffer{}
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db"), SampleInventory: true,
		Logger:  slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Webhook: webhook.Options{URLs: []string{hook.URL}, Secret: []byte(hookKey)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tok := srv.AdminToken
	polURL := srv.URL + webPol + "?api-version=2020-01-01"

	if code, body, id := do(t, "PUT", polURL, tok, "put-policy-1", opsPolicyBody()); code != 200 || id != "put-policy-1" {
		t.Fatalf("put policy: %d %s (request ID %q)", code, body, id)
	}
	if code, body, _ := do(t, "POST", srv.URL+webPol+"/initiate?api-version=2020-01-01", tok, "", opsInitiate(22, "PT1H")); code != 202 && code != 200 {
		t.Fatalf("initiate: %d %s", code, body)
	}
	code, body, refusedID := do(t, "POST", srv.URL+webPol+"/initiate?api-version=2020-01-01", tok, "bad id with spaces", opsInitiate(8080, "PT1H"))
	if code != 400 || refusedID == "" || refusedID == "bad id with spaces" {
		t.Fatalf("refused initiate: %d %s, request ID %q (want a generated one)", code, body, refusedID)
	}
	if code, body, _ := do(t, "POST", srv.URL+webPol+"/initiate?api-version=2020-01-01", tok, "", opsInitiate(22, "PT1S")); code != 202 && code != 200 {
		t.Fatalf("initiate 1s: %d %s", code, body)
	}
	// The expiry job closes the one-second grant (which replaced the first).
	var text string
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, text, _ = do(t, "GET", srv.MetricsURL, "", "", "")
		if code != 200 {
			t.Fatalf("/metrics: %d", code)
		}
		if value(text, "drawbridge_grant_expiry_lag_seconds_count", `stage="removed"`) == 1 &&
			value(text, "drawbridge_webhook_deliveries_total", `outcome="delivered"`) >= 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no expiry measured or webhooks delivered within 10s:\n%s", text)
		}
		time.Sleep(100 * time.Millisecond)
	}

	putRoute := `route="PUT /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies/{name}"`
	initRoute := `route="POST /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies/{name}/initiate"`
	want := []struct {
		name, labels string
		v            float64
	}{
		{"drawbridge_http_requests_total", `code="200",method="PUT",` + putRoute, 1},
		{"drawbridge_http_requests_total", `code="400",method="POST",` + initRoute, 1},
		{"drawbridge_http_request_duration_seconds_count", `method="POST",` + initRoute, 3},
		{"drawbridge_jit_requests_total", `outcome="accepted",reason=""`, 2},
		{"drawbridge_jit_requests_total", `outcome="refused",reason="bad_request"`, 1},
		{"drawbridge_grants_opened_total", ``, 2},
		{"drawbridge_grants_closed_total", `reason="NewerRequestInitiated"`, 1},
		{"drawbridge_grants_closed_total", `reason="Expired"`, 1},
		{"drawbridge_grant_time_to_applied_seconds_count", `provider="sim"`, 2},
		{"drawbridge_grant_expiry_lag_seconds_count", `stage="revoked"`, 1},
		{"drawbridge_grant_expiry_lag_seconds_count", `stage="removed"`, 1},
		{"drawbridge_grants_past_end_time", `provider="sim"`, 0},
		{"drawbridge_grants_active", `provider="sim"`, 0},
		{"drawbridge_grants_active", `provider="nftables"`, 0},
		{"drawbridge_webhook_deliveries_total", `outcome="failed"`, 0},
		{"drawbridge_agents_connected", ``, 0},
		{"drawbridge_build_info", ``, -1}, // has labels; checked below
	}
	for _, w := range want {
		if w.v < 0 {
			continue
		}
		if got := value(text, w.name, w.labels); got != w.v {
			t.Errorf("%s{%s} = %v; want %v", w.name, w.labels, got, w.v)
		}
	}
	if v := value(text, "drawbridge_provider_calls_total", `operation="apply",provider="sim"`); v < 3 {
		t.Errorf("provider apply calls = %v; want ≥ 3", v)
	}
	if v := value(text, "drawbridge_audit_records_total", ""); v < 3 {
		t.Errorf("audit records = %v; want ≥ 3 (policy put, two requests)", v)
	}
	if v := value(text, "drawbridge_store_write_transaction_duration_seconds_count", ""); v < 3 {
		t.Errorf("store write transactions = %v", v)
	}
	// Bounded labels: no VM, principal, grant or raw path in any series.
	for _, bad := range []string{"web-01", "demo-rg", `="admin"`, tok} {
		if strings.Contains(text, bad) {
			t.Errorf("/metrics contains %q", bad)
		}
	}

	// A grant in force shows as active by provider.
	if code, body, _ := do(t, "POST", srv.URL+webPol+"/initiate?api-version=2020-01-01", tok, "", opsInitiate(22, "PT1H")); code != 202 && code != 200 {
		t.Fatalf("initiate: %d %s", code, body)
	}
	_, text, _ = do(t, "GET", srv.MetricsURL, "", "", "")
	if v := value(text, "drawbridge_grants_active", `provider="sim"`); v != 1 {
		t.Errorf("drawbridge_grants_active{sim} = %v; want 1", v)
	}
	if v := value(text, "drawbridge_grants_past_end_time", `provider="sim"`); v != 0 {
		t.Errorf("drawbridge_grants_past_end_time{sim} = %v; want 0", v)
	}

	// A request needing approval: pending, then approved.
	ctx := jit.WithActor(context.Background(), jit.Actor{Principal: "admin"})
	if _, err := srv.Service.PutPolicy(ctx, hookPolicy()); err != nil {
		t.Fatal(err)
	}
	p, err := srv.Service.Initiate(ctx, jit.Actor{Principal: "alice", Address: "198.18.0.7"}, webPol, hookRequest(3389, "198.18.0.7", "PT1H", "patching"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := srv.Service.Approve(ctx, jit.Actor{Principal: "bob", Groups: []string{"ops"}}, p.ID); err != nil {
		t.Fatal(err)
	}
	_, text, _ = do(t, "GET", srv.MetricsURL, "", "", "")
	for _, w := range []struct {
		name, labels string
		v            float64
	}{
		{"drawbridge_jit_requests_total", `outcome="pending",reason=""`, 1},
		{"drawbridge_jit_approval_decisions_total", `decision="approved"`, 1},
		{"drawbridge_grants_opened_total", ``, 4},
	} {
		if got := value(text, w.name, w.labels); got != w.v {
			t.Errorf("%s{%s} = %v; want %v", w.name, w.labels, got, w.v)
		}
	}

	// A wrong token (the real one with its secret changed) is refused and
	// never logged.
	wrong := tok[:len(tok)-6] + "zzzzzz"
	if code, _, _ := do(t, "POST", srv.URL+webPol+"/initiate", wrong, "", opsInitiate(22, "PT1H")); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	if strings.Contains(logs.String(), wrong) || strings.Contains(logs.String(), "zzzzzz") {
		t.Error("the log contains a presented (wrong) token")
	}

	checkLogs(t, logs, tok, refusedID)
}

// checkLogs: one info line per state change, with request IDs, and no secret.
func checkLogs(t *testing.T, logs *syncBuffer, token, refusedID string) {
	t.Helper()
	all := logs.String()
	for _, secret := range []string{token, hookKey} {
		if strings.Contains(all, secret) {
			t.Errorf("the log contains a secret (%.6s…)", secret)
		}
	}
	find := func(msg string, match func(map[string]any) bool) map[string]any {
		for _, l := range logs.lines(t) {
			if l["msg"] == msg && l["level"] == "INFO" && (match == nil || match(l)) {
				return l
			}
		}
		t.Errorf("no info line %q in the log", msg)
		return nil
	}
	if l := find("policy put", nil); l != nil && l["request_id"] != "put-policy-1" {
		t.Errorf("policy put line %v: want request_id put-policy-1", l)
	}
	if l := find("request refused", nil); l != nil && (l["request_id"] != refusedID || l["reason"] != "bad_request" || l["message"] == "") {
		t.Errorf("request refused line %v", l)
	}
	find("request accepted", func(l map[string]any) bool { return l["jit_request"] != "" && l["vm"] == webVM })
	find("grant opened", func(l map[string]any) bool { return l["grant"] != "" && l["principal"] == "admin" })
	find("request pending approval", func(l map[string]any) bool { return l["requestor"] == "alice" && l["port"] == float64(3389) })
	find("request approved", func(l map[string]any) bool { return l["principal"] == "bob" })
	find("grant closed", func(l map[string]any) bool { return l["reason"] == "Expired" })
	find("grant closed", func(l map[string]any) bool { return l["reason"] == "NewerRequestInitiated" })
	debugSeen := false
	for _, l := range logs.lines(t) {
		if l["msg"] == "http request" && l["level"] == "DEBUG" && l["request_id"] == "put-policy-1" && l["status"] == float64(200) {
			debugSeen = true
		}
	}
	if !debugSeen {
		t.Error("no debug access log line for the policy put")
	}
}

// value returns the sample of name whose labels (sorted, as the text
// format writes them) are exactly labels, or -1 when there is none.
func value(text, name, labels string) float64 {
	series := name
	if labels != "" {
		series += "{" + labels + "}"
	}
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			if err != nil {
				return -2
			}
			return v
		}
	}
	return -1
}

// TestReadyzFollowsTheStore: /readyz is 200, 503 naming the store while
// the database is away (/healthz stays 200), and 200 again once it is back.
func TestReadyzFollowsTheStore(t *testing.T) {
	down := server.StoreSwitch(t)
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db"), SampleInventory: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ready := func() (int, string) {
		code, body, _ := do(t, "GET", srv.URL+"/readyz", "", "", "")
		return code, body
	}
	if code, body := ready(); code != 200 || !strings.Contains(body, `"ready"`) {
		t.Fatalf("/readyz = %d %s; want 200 ready", code, body)
	}
	down.Store(true)
	if code, body := ready(); code != 503 || !strings.Contains(body, "store: ") || !strings.Contains(body, "connection refused") {
		t.Fatalf("/readyz with the store down = %d %s; want 503 naming the store", code, body)
	}
	if code, _, _ := do(t, "GET", srv.URL+"/healthz", "", "", ""); code != 200 {
		t.Fatalf("/healthz with the store down = %d; want 200 (liveness)", code)
	}
	down.Store(false)
	if code, body := ready(); code != 200 {
		t.Fatalf("/readyz after the store is back = %d %s", code, body)
	}
}

// TestReadyzWantsCurrentMigrations: a database migrated past this build's
// schema (a newer replica) makes the server not ready.
func TestReadyzWantsCurrentMigrations(t *testing.T) {
	db := filepath.Join(t.TempDir(), "drawbridge.db")
	srv, err := server.Start(context.Background(), server.Config{Listen: "127.0.0.1:0", DBPath: db, SampleInventory: true, MetricsListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if code, body, _ := do(t, "GET", srv.URL+"/readyz", "", "", ""); code != 200 {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	// --metrics-listen moves /metrics off the API's address.
	if code, _, _ := do(t, "GET", srv.URL+"/metrics", "", "", ""); code == 200 {
		t.Fatal("/metrics still served on the API address with MetricsListen set")
	}
	if code, body, _ := do(t, "GET", srv.MetricsURL, "", "", ""); code != 200 || !strings.Contains(body, "drawbridge_http_requests_total") {
		t.Fatalf("%s = %d", srv.MetricsURL, code)
	}
	other, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'from_the_future', '2030-01-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}
	code, body, _ := do(t, "GET", srv.URL+"/readyz", "", "", "")
	if code != 503 || !strings.Contains(body, "migrations: the database schema is version 9999") {
		t.Fatalf("/readyz = %d %s; want 503 naming the migrations", code, body)
	}
}

// TestOpenAPIServed: /openapi.json is the document in the repository,
// without authentication.
func TestOpenAPIServed(t *testing.T) {
	srv, err := server.Start(context.Background(), server.Config{Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	code, body, _ := do(t, "GET", srv.URL+"/openapi.json", "", "", "")
	if code != 200 || body != string(api.OpenAPIDocument()) || !strings.Contains(body, `"openapi": "3.1.0"`) {
		t.Fatalf("/openapi.json: %d, %d bytes", code, len(body))
	}
}
