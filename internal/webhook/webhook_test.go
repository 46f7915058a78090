package webhook_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/webhook"
)

var secret = []byte("test secret: not for production")

const vm1 = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// hit is one request a receiver saw.
type hit struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a loopback httptest server answering with answer(n) for its
// n-th request (1-based).
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	hits []hit
	got  chan struct{} // one value per request, buffered
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{got: make(chan struct{}, 1000)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.hits = append(rc.hits, hit{header: r.Header.Clone(), body: body, at: time.Now()})
		n := len(rc.hits)
		rc.mu.Unlock()
		rc.got <- struct{}{}
		answer(n, w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) all() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

// wait blocks until the receiver has seen n requests in total.
func (rc *receiver) wait(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for len(rc.all()) < n {
		select {
		case <-rc.got:
		case <-deadline:
			t.Fatalf("receiver saw %d requests; want %d", len(rc.all()), n)
		}
	}
}

func ok(int, http.ResponseWriter, *http.Request) {}

// logBuf is a goroutine-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newDispatcher(t *testing.T, opt webhook.Options) (*webhook.Dispatcher, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	opt.Secret = secret
	opt.Logger = slog.New(slog.NewTextHandler(logs, nil))
	if opt.Backoff == 0 {
		opt.Backoff = 10 * time.Millisecond
	}
	d, err := webhook.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Close(ctx)
	})
	return d, logs
}

// verify checks the signature the way a receiver would, with crypto/hmac
// directly (not the package's own Verify).
func verify(t *testing.T, h hit) {
	t.Helper()
	m := hmac.New(sha256.New, secret)
	m.Write(h.body)
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	got := h.header.Get("X-Drawbridge-Signature")
	if !hmac.Equal([]byte(got), []byte(want)) {
		t.Fatalf("signature %q; want %q over %s", got, want, h.body)
	}
}

func event(kind jit.EventKind, reason jit.Reason) jit.Event {
	return jit.Event{Kind: kind, Time: t0, Principal: "alice", Requestor: "alice", VMID: vm1, Port: 22, Protocol: "Tcp",
		Source: "198.18.0.7", EndTime: t0.Add(time.Hour), GrantID: "g1", RequestID: "r1", Reason: reason}
}

func TestEachKindIsDeliveredSigned(t *testing.T) {
	rc := newReceiver(t, ok)
	other := newReceiver(t, ok)
	d, _ := newDispatcher(t, webhook.Options{URLs: []string{rc.URL + "/hook?token=x", other.URL}})
	kinds := []jit.Event{
		event(jit.EventRequested, jit.ReasonAwaitingApproval),
		event(jit.EventApproved, ""),
		event(jit.EventDenied, jit.ReasonDenied),
		event(jit.EventOpened, jit.ReasonUserRequested),
		event(jit.EventClosed, jit.ReasonExpired),
	}
	kinds[2].Principal, kinds[2].Detail = "bob", "not <now> & not here"
	kinds[4].Principal, kinds[4].Requestor = jit.SystemPrincipal, ""
	d.Publish(kinds)
	rc.wait(t, len(kinds))
	other.wait(t, len(kinds))
	hits := rc.all()
	for i, h := range hits {
		verify(t, h)
		var p map[string]any
		if err := json.Unmarshal(h.body, &p); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"event", "time", "principal", "vm", "port", "source", "endTimeUtc", "grantId", "requestId", "reason", "text"} {
			if _, ok := p[k]; !ok {
				t.Fatalf("payload %s lacks %q", h.body, k)
			}
		}
		// In order, header and body agree, delivery ID in both.
		if p["event"] != string(kinds[i].Kind) || h.header.Get("X-Drawbridge-Event") != string(kinds[i].Kind) {
			t.Fatalf("hit %d: event %v, header %q; want %s", i, p["event"], h.header.Get("X-Drawbridge-Event"), kinds[i].Kind)
		}
		if id := h.header.Get("X-Drawbridge-Delivery"); id == "" || p["id"] != id {
			t.Fatalf("delivery ID header %q, body %v", id, p["id"])
		}
		if p["vm"] != vm1 || p["port"] != float64(22) || p["source"] != "198.18.0.7" || p["grantId"] != "g1" || p["requestId"] != "r1" ||
			p["endTimeUtc"] != "2026-11-25T13:00:00Z" || p["time"] != "2026-11-25T12:00:00Z" || p["reason"] != string(kinds[i].Reason) {
			t.Fatalf("payload %s", h.body)
		}
		if h.header.Get("Content-Type") != "application/json" {
			t.Fatalf("content type %q", h.header.Get("Content-Type"))
		}
		// A receiver with another secret rejects it.
		if webhook.Verify([]byte("another secret"), h.body, h.header.Get("X-Drawbridge-Signature")) {
			t.Fatal("signature verifies under another secret")
		}
		if !webhook.Verify(secret, h.body, h.header.Get("X-Drawbridge-Signature")) {
			t.Fatal("webhook.Verify rejects a good signature")
		}
	}
	// The same event goes to both URLs with the same delivery ID and body.
	if o := other.all(); !bytes.Equal(o[0].body, hits[0].body) {
		t.Fatalf("URLs got different bodies:\n%s\n%s", o[0].body, hits[0].body)
	}
	texts := map[string]string{}
	for _, h := range hits {
		var p webhook.Payload
		_ = json.Unmarshal(h.body, &p)
		texts[p.Event] = p.Text
	}
	want := map[string]string{
		"requested": "alice requested vm1 port 22/TCP from 198.18.0.7 until 2026-11-25T13:00:00Z (awaiting approval)",
		"approved":  "alice approved alice's request for vm1 port 22/TCP from 198.18.0.7 until 2026-11-25T13:00:00Z",
		"denied":    "bob denied alice's request for vm1 port 22/TCP from 198.18.0.7: not &lt;now&gt; &amp; not here",
		"opened":    "opened vm1 port 22/TCP to 198.18.0.7 for alice until 2026-11-25T13:00:00Z",
		"closed":    "closed vm1 port 22/TCP to 198.18.0.7 (Expired)",
	}
	for k, w := range want {
		if texts[k] != w {
			t.Errorf("%s text\n got %q\nwant %q", k, texts[k], w)
		}
	}
	if s := waitStats(d, func(s webhook.Stats) bool { return s.Delivered == 10 }); s.Delivered != 10 || s.Queued != 10 || s.Failed != 0 || s.Dropped != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// waitStats polls (bounded) until cond holds, since counters move just
// after the receiver answers; it returns the last stats.
func waitStats(d *webhook.Dispatcher, cond func(webhook.Stats) bool) webhook.Stats {
	deadline := time.Now().Add(5 * time.Second)
	s := d.Stats()
	for !cond(s) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		s = d.Stats()
	}
	return s
}

func TestRetriesUntilDeliveredOnce(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	d, logs := newDispatcher(t, webhook.Options{URLs: []string{rc.URL}, Backoff: 20 * time.Millisecond})
	d.Publish([]jit.Event{event(jit.EventOpened, jit.ReasonUserRequested)})
	rc.wait(t, 3)
	// Nothing more arrives: delivered exactly once.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	hits := rc.all()
	if len(hits) != 3 {
		t.Fatalf("receiver saw %d requests; want 3 (500, 500, 200)", len(hits))
	}
	for i, h := range hits {
		verify(t, h)
		if !bytes.Equal(h.body, hits[0].body) || h.header.Get("X-Drawbridge-Delivery") != hits[0].header.Get("X-Drawbridge-Delivery") {
			t.Fatalf("retry %d changed the body or delivery ID", i)
		}
		if h.header.Get("X-Drawbridge-Attempt") != string(rune('1'+i)) {
			t.Fatalf("attempt header %q at %d", h.header.Get("X-Drawbridge-Attempt"), i)
		}
	}
	// Backoff doubles: 20ms then 40ms (lower bounds only).
	if g1, g2 := hits[1].at.Sub(hits[0].at), hits[2].at.Sub(hits[1].at); g1 < 20*time.Millisecond || g2 < 40*time.Millisecond {
		t.Fatalf("gaps %s, %s; want at least 20ms, 40ms", g1, g2)
	}
	if s := d.Stats(); s.Delivered != 1 || s.Retries != 2 || s.Failed != 0 {
		t.Fatalf("stats %+v", s)
	}
	if !strings.Contains(logs.String(), "will retry") {
		t.Fatalf("no retry logged:\n%s", logs)
	}
}

func TestGivesUpAfterAttempts(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	d, logs := newDispatcher(t, webhook.Options{URLs: []string{rc.URL + "/secret-path-token"}, Attempts: 4, Backoff: time.Millisecond})
	d.Publish([]jit.Event{event(jit.EventClosed, jit.ReasonExpired)})
	rc.wait(t, 4)
	waitStats(d, func(s webhook.Stats) bool { return s.Failed > 0 })
	time.Sleep(50 * time.Millisecond)
	if n := len(rc.all()); n != 4 {
		t.Fatalf("receiver saw %d attempts; want 4", n)
	}
	if s := d.Stats(); s.Failed != 1 || s.Delivered != 0 {
		t.Fatalf("stats %+v", s)
	}
	l := logs.String()
	if !strings.Contains(l, "giving up") || !strings.Contains(l, "HTTP 502") {
		t.Fatalf("give-up not logged:\n%s", l)
	}
	if strings.Contains(l, "secret-path-token") {
		t.Fatalf("log shows the URL's path:\n%s", l)
	}
}

func TestPermanentFailureIsNotRetried(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) })
	d, logs := newDispatcher(t, webhook.Options{URLs: []string{rc.URL}, Backoff: time.Millisecond})
	d.Publish([]jit.Event{event(jit.EventClosed, jit.ReasonExpired)})
	rc.wait(t, 1)
	waitStats(d, func(s webhook.Stats) bool { return s.Failed > 0 })
	time.Sleep(50 * time.Millisecond)
	if n := len(rc.all()); n != 1 {
		t.Fatalf("a 404 was retried: %d attempts", n)
	}
	if !strings.Contains(logs.String(), "permanent failure") {
		t.Fatalf("log:\n%s", logs)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	})
	d, _ := newDispatcher(t, webhook.Options{URLs: []string{rc.URL}, Backoff: time.Millisecond})
	d.Publish([]jit.Event{event(jit.EventOpened, "")})
	rc.wait(t, 2)
	hits := rc.all()
	if gap := hits[1].at.Sub(hits[0].at); gap < 900*time.Millisecond {
		t.Fatalf("retried %s after a 429 with Retry-After: 1 (backoff 1ms)", gap)
	}
	if s := waitStats(d, func(s webhook.Stats) bool { return s.Delivered == 1 }); s.Delivered != 1 || s.Retries != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// A receiver that hangs: Publish returns at once, a full queue drops with a
// warning and a count, and Close is bounded by its context.
func TestHangingReceiverNeverBlocksPublish(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	d, logs := newDispatcher(t, webhook.Options{URLs: []string{rc.URL}, QueueSize: 3, Timeout: time.Minute})
	d.Publish([]jit.Event{event(jit.EventOpened, "")})
	rc.wait(t, 1) // the worker is now stuck in the first delivery
	start := time.Now()
	for i := 0; i < 10; i++ {
		d.Publish([]jit.Event{event(jit.EventClosed, jit.ReasonExpired)})
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Publish took %s with a hanging receiver", el)
	}
	if s := d.Stats(); s.Queued != 4 || s.Dropped != 7 {
		t.Fatalf("stats %+v; want 4 queued (1 in flight + 3), 7 dropped", s)
	}
	if n := strings.Count(logs.String(), "queue full"); n != 7 {
		t.Fatalf("%d queue-full warnings; want 7:\n%s", n, logs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := d.Close(ctx); err == nil {
		t.Fatal("Close with a hanging receiver returned no error")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("Close took %s", el)
	}
	if s := d.Stats(); s.Failed != 4 {
		t.Fatalf("stats after Close %+v; want the 4 queued given up", s)
	}
	d.Publish([]jit.Event{event(jit.EventClosed, jit.ReasonExpired)}) // after Close: dropped, no panic
	if s := d.Stats(); s.Dropped != 8 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	if _, err := webhook.New(webhook.Options{URLs: []string{"http://127.0.0.1:1/"}}); err == nil {
		t.Fatal("no secret accepted")
	}
	if _, err := webhook.New(webhook.Options{URLs: []string{"ftp://example.test/x"}, Secret: secret}); err == nil {
		t.Fatal("ftp URL accepted")
	}
	if _, err := webhook.New(webhook.Options{Secret: secret}); err == nil {
		t.Fatal("no URL accepted")
	}
}
