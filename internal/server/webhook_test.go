package server_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/server"
	"github.com/drawbridge/drawbridge/internal/webhook"
)

var hookSecret = []byte("server webhook test secret")

// hookReceiver records signed webhook deliveries on loopback. fail(n)
// says whether to answer the n-th request (1-based) with 500.
type hookReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	all  int                 // requests seen
	ok   []map[string]any    // payloads answered 200, in order
	bad  []string            // signature failures
	seen map[string]int      // delivery ID -> times answered 200
	hit  chan struct{}       // one value per request
	hold func(*http.Request) // blocks before answering, if set
}

func newHookReceiver(t *testing.T, fail func(n int) bool, hold func(*http.Request)) *hookReceiver {
	t.Helper()
	h := &hookReceiver{seen: map[string]int{}, hit: make(chan struct{}, 1000), hold: hold}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.all++
		n := h.all
		h.mu.Unlock()
		h.hit <- struct{}{}
		if h.hold != nil {
			h.hold(r)
		}
		if fail != nil && fail(n) {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		// Verify as a receiver would: HMAC-SHA256 of the exact body.
		m := hmac.New(sha256.New, hookSecret)
		m.Write(body)
		want := "sha256=" + hex.EncodeToString(m.Sum(nil))
		var p map[string]any
		err := json.Unmarshal(body, &p)
		h.mu.Lock()
		defer h.mu.Unlock()
		if !hmac.Equal([]byte(r.Header.Get("X-Drawbridge-Signature")), []byte(want)) || err != nil ||
			r.Header.Get("X-Drawbridge-Event") != p["event"] || r.Header.Get("X-Drawbridge-Delivery") == "" {
			h.bad = append(h.bad, string(body))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.ok = append(h.ok, p)
		h.seen[r.Header.Get("X-Drawbridge-Delivery")]++
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// events returns "kind:principal:port[:reason]" of the payloads answered 200.
func (h *hookReceiver) events() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, p := range h.ok {
		s := fmt.Sprintf("%v:%v:%v", p["event"], p["principal"], p["port"])
		if r, _ := p["reason"].(string); r != "" {
			s += ":" + r
		}
		out = append(out, s)
	}
	return out
}

// waitFor waits (bounded) until n payloads were accepted.
func (h *hookReceiver) waitFor(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for len(h.events()) < n {
		select {
		case <-h.hit:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("received %d events %v; want %d", len(h.events()), h.events(), n)
		}
	}
	return h.events()
}

func startWithHooks(t *testing.T, urls ...string) *server.Server {
	t.Helper()
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db"), SampleInventory: true,
		Webhook: webhook.Options{URLs: urls, Secret: hookSecret, Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
		// No audit checkpoint events while the test counts events.
		CheckpointEvery: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

func hookPolicy() jit.Policy {
	return jit.Policy{ID: webPol, Name: "web", Location: "westeurope", VirtualMachines: []jit.VMPolicy{{ID: webVM, Ports: []jit.PortPolicy{
		{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "198.18.0.0/15", MaxRequestAccessDuration: "PT3H"},
		{Number: 3389, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H",
			RequireApproval: &jit.ApprovalRule{Approvers: "ops", Count: 1}},
	}}}}
}

func hookRequest(port int, src, d, why string) jit.InitiateInput {
	return jit.InitiateInput{Justification: why, VirtualMachines: []jit.InitiateVM{{ID: webVM, Ports: []jit.InitiatePort{
		{Number: port, Duration: d, AllowedSourceAddressPrefix: src}}}}}
}

// TestWebhooksThroughTheService drives the real server's service (SQLite,
// simulated provider, expiry job) through every kind of event and checks
// what a loopback receiver gets: each event signed, in order, nothing for a
// refused request. A second receiver answers 500 to its first two requests
// and still gets every event exactly once.
func TestWebhooksThroughTheService(t *testing.T) {
	rc := newHookReceiver(t, nil, nil)
	flaky := newHookReceiver(t, func(n int) bool { return n <= 2 }, nil)
	srv := startWithHooks(t, rc.srv.URL+"/hook", flaky.srv.URL)
	defer srv.Close()
	svc := srv.Service
	ctx := jit.WithActor(context.Background(), jit.Actor{Principal: "admin"})
	if _, err := svc.PutPolicy(ctx, hookPolicy()); err != nil {
		t.Fatal(err)
	}
	alice := jit.Actor{Principal: "alice", Address: "198.18.0.7"}
	bob := jit.Actor{Principal: "bob", Groups: []string{"ops"}}

	r1, err := svc.Initiate(ctx, alice, webPol, hookRequest(22, "", "PT1H", ""))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"requested:alice:22", "opened:alice:22:UserRequested"}
	rc.waitFor(t, len(want))

	// Refused: source outside the policy's prefixes, port not in it.
	if _, err := svc.Initiate(ctx, alice, webPol, hookRequest(22, "203.0.113.9", "PT1H", "")); !errors.Is(err, jit.ErrForbidden) {
		t.Fatalf("err = %v; want forbidden", err)
	}
	if _, err := svc.Initiate(ctx, alice, webPol, hookRequest(8080, "", "PT1H", "")); !errors.Is(err, jit.ErrInvalid) {
		t.Fatalf("err = %v; want invalid", err)
	}

	if _, err := svc.Revoke(ctx, jit.Actor{Principal: "carol"}, r1.Grants[0].ID); err != nil {
		t.Fatal(err)
	}
	want = append(want, "closed:carol:22:UserRequested")

	p1, err := svc.Initiate(ctx, alice, webPol, hookRequest(3389, "198.18.0.7", "PT1H", "patching"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Deny(ctx, bob, p1.ID, "not today"); err != nil {
		t.Fatal(err)
	}
	p2, err := svc.Initiate(ctx, alice, webPol, hookRequest(3389, "198.18.0.7", "PT1H", "patching"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Approve(ctx, bob, p2.ID); err != nil {
		t.Fatal(err)
	}
	want = append(want, "requested:alice:3389:AwaitingApproval", "denied:bob:3389:Denied",
		"requested:alice:3389:AwaitingApproval", "approved:bob:3389", "opened:alice:3389:UserRequested")

	// The server's own expiry job closes a short grant.
	if _, err := svc.Initiate(ctx, alice, webPol, hookRequest(22, "", "1s", "")); err != nil {
		t.Fatal(err)
	}
	want = append(want, "requested:alice:22", "opened:alice:22:UserRequested", "closed:drawbridge:22:Expired")

	got := rc.waitFor(t, len(want))
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
	flakyGot := flaky.waitFor(t, len(want))
	if strings.Join(flakyGot, " ") != strings.Join(want, " ") {
		t.Fatalf("flaky receiver's events\n got %v\nwant %v", flakyGot, want)
	}
	// Nothing arrives twice (or late, e.g. for the refused requests).
	time.Sleep(300 * time.Millisecond)
	for _, h := range []*hookReceiver{rc, flaky} {
		h.mu.Lock()
		if len(h.bad) != 0 {
			t.Errorf("bad signatures: %v", h.bad)
		}
		if len(h.ok) != len(want) {
			t.Errorf("%d events accepted; want %d", len(h.ok), len(want))
		}
		for id, n := range h.seen {
			if n != 1 {
				t.Errorf("delivery %s accepted %d times", id, n)
			}
		}
		h.mu.Unlock()
	}
	flaky.mu.Lock()
	if flaky.all != len(want)+2 {
		t.Errorf("flaky receiver saw %d requests; want %d (two 500s retried)", flaky.all, len(want)+2)
	}
	flaky.mu.Unlock()
	rc.mu.Lock()
	first := rc.ok[1]
	rc.mu.Unlock()
	if first["vm"] != webVM || first["grantId"] != r1.Grants[0].ID || first["requestId"] != r1.ID || first["source"] != "198.18.0.7" ||
		!strings.Contains(first["text"].(string), "opened web-01 port 22/TCP to 198.18.0.7 for alice") {
		t.Fatalf("opened payload %v", first)
	}
	if s := srv.Webhooks.Stats(); s.Dropped != 0 || s.Failed != 0 || s.Retries != 2 {
		t.Fatalf("webhook stats %+v", s)
	}
}

// TestHangingWebhookDoesNotBlockRequests: with a receiver that never
// answers until released, requests and revokes return while it hangs.
func TestHangingWebhookDoesNotBlockRequests(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	rc := newHookReceiver(t, nil, func(r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(free) // runs before the receiver's Close (cleanups are LIFO)
	srv := startWithHooks(t, rc.srv.URL)
	defer srv.Close()
	defer free()
	svc := srv.Service
	ctx := jit.WithActor(context.Background(), jit.Actor{Principal: "admin"})
	if _, err := svc.PutPolicy(ctx, hookPolicy()); err != nil {
		t.Fatal(err)
	}
	alice := jit.Actor{Principal: "alice", Address: "198.18.0.7"}

	// call runs op and fails if it has not returned within a generous
	// bound while the receiver is still held.
	call := func(name string, op func() error) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- op() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s did not return while the webhook receiver hangs", name)
		}
		select {
		case <-release:
			t.Fatalf("%s: receiver released too early; the test proves nothing", name)
		default:
		}
	}
	var r jit.Request
	call("first initiate", func() (err error) { r, err = svc.Initiate(ctx, alice, webPol, hookRequest(22, "", "PT1H", "")); return })
	// The receiver now holds the first delivery.
	select {
	case <-rc.hit:
	case <-time.After(10 * time.Second):
		t.Fatal("receiver never got the first event")
	}
	for i := 0; i < 3; i++ {
		call(fmt.Sprintf("initiate %d", i+2), func() (err error) {
			r, err = svc.Initiate(ctx, alice, webPol, hookRequest(22, "", "PT1H", ""))
			return
		})
	}
	call("revoke", func() error { _, err := svc.Revoke(ctx, alice, r.Grants[0].ID); return err })
	if s := srv.Webhooks.Stats(); s.Delivered != 0 || s.Queued < 10 {
		t.Fatalf("stats while hanging %+v", s)
	}
	free()
	// 2 + 3×3 (closed, requested, opened) + 1 closed = 12 events, all delivered once released.
	if got := rc.waitFor(t, 12); got[len(got)-1] != "closed:alice:22:UserRequested" {
		t.Fatalf("events after release %v", got)
	}
}
