package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
	"github.com/drawbridge/drawbridge/internal/server"
)

// TestAgentMetrics plays an agent over HTTP (stream, reports) and checks
// the agent-side metrics: streams connected, snapshot issued → applied,
// time to applied and expiry lag measured at the agent's reports.
func TestAgentMetrics(t *testing.T) {
	logs := &syncBuffer{}
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db"), Insecure: true,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rg := "/subscriptions/s1/resourceGroups/rack"
	vm := rg + "/providers/Microsoft.Compute/virtualMachines/h1"
	pol := rg + "/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/h1"
	inv := fmt.Sprintf(`{"vms":[{"id":%q,"name":"h1","cloud":"host","provider":"nftables","location":"westeurope","addresses":["198.18.200.10"]}]}`, vm)
	if code, body, _ := do(t, "POST", srv.URL+"/drawbridge/v1/inventory", "", "", inv); code != 200 {
		t.Fatalf("inventory: %d %s", code, body)
	}
	polBody := fmt.Sprintf(`{"properties":{"virtualMachines":[{"id":%q,"ports":[{"number":22,"protocol":"TCP","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]}]}}`, vm)
	if code, body, _ := do(t, "PUT", srv.URL+pol, "", "", polBody); code != 200 {
		t.Fatalf("policy: %d %s", code, body)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/drawbridge/v1/agent/stream?vm="+url.QueryEscape(vm), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	snaps := make(chan agenthub.Snapshot, 16)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var s agenthub.Snapshot
			if json.Unmarshal(sc.Bytes(), &s) == nil && s.Type == "snapshot" {
				snaps <- s
			}
		}
		close(snaps)
	}()
	next := func(want func(agenthub.Snapshot) bool) agenthub.Snapshot {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case s, ok := <-snaps:
				if !ok {
					t.Fatal("stream ended")
				}
				if want(s) {
					return s
				}
			case <-timeout:
				t.Fatal("no matching snapshot within 10s")
			}
		}
	}
	report := func(s agenthub.Snapshot) {
		t.Helper()
		ids := []string{}
		for _, g := range s.Grants {
			ids = append(ids, g.ID)
		}
		b, _ := json.Marshal(agenthub.Report{VM: s.VM, Version: s.Version, Enforced: ids})
		if code, body, _ := do(t, "POST", srv.URL+"/drawbridge/v1/agent/report", "", "", string(b)); code != 204 {
			t.Fatalf("report: %d %s", code, body)
		}
	}
	metric := func(name, labels string) float64 {
		_, text, _ := do(t, "GET", srv.MetricsURL, "", "", "")
		return value(text, name, labels)
	}
	report(next(func(s agenthub.Snapshot) bool { return len(s.Grants) == 0 }))
	if v := metric("drawbridge_agents_connected", ""); v != 1 {
		t.Fatalf("agents connected = %v; want 1", v)
	}
	initiate := fmt.Sprintf(`{"virtualMachines":[{"id":%q,"ports":[{"number":22,"duration":"PT2S","allowedSourceAddressPrefix":"198.18.0.9"}]}]}`, vm)
	if code, body, _ := do(t, "POST", srv.URL+pol+"/initiate", "", "", initiate); code != 202 && code != 200 {
		t.Fatalf("initiate: %d %s", code, body)
	}
	report(next(func(s agenthub.Snapshot) bool { return len(s.Grants) == 1 }))
	if v := metric("drawbridge_grant_time_to_applied_seconds_count", `provider="nftables"`); v != 1 {
		t.Errorf("time to applied (nftables) count = %v; want 1", v)
	}
	// The grant expires; the agent's report without it is the removal.
	report(next(func(s agenthub.Snapshot) bool { return len(s.Grants) == 0 }))
	if v := metric("drawbridge_grant_expiry_lag_seconds_count", `stage="removed"`); v != 1 {
		t.Errorf("expiry lag (removed) count = %v; want 1", v)
	}
	if v := metric("drawbridge_agent_snapshot_apply_seconds_count", ""); v < 3 {
		t.Errorf("snapshot apply count = %v; want ≥ 3", v)
	}
	if v := metric("drawbridge_agent_reports_total", `result="ok"`); v != 3 {
		t.Errorf("agent reports = %v; want 3", v)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for metric("drawbridge_agents_connected", "") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("agents connected did not return to 0 after the stream closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, msg := range []string{`"msg":"agent connected"`, `"msg":"agent disconnected"`} {
		if !strings.Contains(logs.String(), msg) {
			t.Errorf("no %s line in the log", msg)
		}
	}
}
