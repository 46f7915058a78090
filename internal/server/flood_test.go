package server_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/server"
)

// TestRefusedCallFloodIsBounded: a principal without a role sends many
// refused calls. The first few are audited one by one (403, and 404 for
// a grant that does not exist), then it gets 429 with Retry-After, and
// the calls turned away are audited as one summary record once the
// window ends; error messages quote only a prefix of a huge input.
func TestRefusedCallFloodIsBounded(t *testing.T) {
	lim := auth.NewRefusalLimiter(300*time.Millisecond, 5, 1000, 0)
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db"), SampleInventory: true, RefusalLimiter: lim,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e := &httpEnv{t: t, srv: srv, admin: srv.AdminToken}
	mallory := e.tokenFor("mallory", "Reader", "/subscriptions/none")

	st, _, body := e.call(mallory, "POST", "/drawbridge/v1/grants/no-such-grant/revoke", nil)
	if st != 404 {
		t.Fatalf("revoke of a missing grant: %d %s", st, body)
	}
	st, _, body = e.call(mallory, "GET", "/drawbridge/v1/grants?vm="+strings.Repeat("A", 1<<20), nil)
	if st != 400 && st != 403 {
		t.Fatalf("huge vm: status %d", st)
	}
	if len(body) > 4096 {
		t.Errorf("error for a 1 MiB VM ID is %d bytes; want a bounded prefix", len(body))
	}
	statuses := map[int]int{}
	for range 200 {
		st, _, _ := e.call(mallory, "GET", webPol, nil)
		statuses[st]++
	}
	if statuses[403] != 3 || statuses[429] != 197 {
		t.Fatalf("statuses of 200 refused calls after 2 refusals: %v; want 3×403 then 197×429", statuses)
	}
	time.Sleep(1100 * time.Millisecond) // the window ends; serve flushes at most once a second
	e.call(e.admin, "POST", "/drawbridge/v1/grants/no-such-grant-either/revoke", nil)

	var list struct {
		Value []struct{ Principal, Operation, Detail, Result string }
	}
	if err := json.Unmarshal(e.must(e.admin, "GET", "/drawbridge/v1/audit", nil, 200), &list); err != nil {
		t.Fatal(err)
	}
	var mine, summaries int
	for _, r := range list.Value {
		if r.Principal != "mallory" {
			continue
		}
		mine++
		if r.Operation == "refused.summary" {
			summaries++
			if !strings.Contains(r.Detail, "197 calls turned away") {
				t.Errorf("summary detail %q does not count the 197 calls", r.Detail)
			}
		}
	}
	if mine != 6 || summaries != 1 {
		t.Errorf("mallory's records: %d (%d summaries); want 5 refusals (404, 400/403, 3×403) and 1 summary", mine, summaries)
	}
}
