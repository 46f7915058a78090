package server_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/server"
	"github.com/drawbridge/drawbridge/internal/store/sqlite"
)

// TestRefusedCallFloodIsBounded: a principal without a role sends many
// refused calls. The first few are audited one by one (403, and 404 for
// a grant that does not exist), then it gets 429 with Retry-After, and
// the calls turned away are audited as one summary record when the window
// ends or, as here, the server stops; error messages quote only a prefix
// of a huge input.
func TestRefusedCallFloodIsBounded(t *testing.T) {
	// A window far longer than the test: the summary is written when the
	// server stops (Close summarises open windows), read from the file.
	lim := auth.NewRefusalLimiter(time.Hour, 5, 1000, 0)
	db := filepath.Join(t.TempDir(), "drawbridge.db")
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: db, SampleInventory: true, RefusalLimiter: lim,
	})
	if err != nil {
		t.Fatal(err)
	}
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
	var retryAfter string
	for range 200 {
		req, _ := http.NewRequest("GET", srv.URL+webPol, nil)
		req.Header.Set("Authorization", "Bearer "+mallory)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		statuses[resp.StatusCode]++
		if resp.StatusCode == 429 {
			retryAfter = resp.Header.Get("Retry-After")
		}
	}
	if statuses[403] != 3 || statuses[429] != 197 {
		t.Fatalf("statuses of 200 refused calls after 2 refusals: %v; want 3×403 then 197×429", statuses)
	}
	if n, err := strconv.Atoi(retryAfter); err != nil || n < 1 || n > 3600 {
		t.Errorf("Retry-After %q, want the seconds left of the window", retryAfter)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}

	store, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	recs, err := access.New(store, nil).Audit(context.Background(), auditstore.Filter{Principal: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	var summaries int
	for _, r := range recs {
		if r.Operation == "refused.summary" {
			summaries++
			if !strings.Contains(r.Detail, "197 calls turned away") {
				t.Errorf("summary detail %q does not count the 197 calls", r.Detail)
			}
		}
	}
	if len(recs) != 6 || summaries != 1 {
		t.Errorf("mallory's records: %d (%d summaries); want 5 refusals (404, 400/403, 3×403) and 1 summary", len(recs), summaries)
	}
}
