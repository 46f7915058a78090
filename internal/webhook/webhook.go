// Package webhook delivers JIT events (requested, approved, denied, opened,
// closed) as signed JSON POSTs to configured URLs.
//
// Delivery is asynchronous: Publish encodes and signs each event and puts
// it on a bounded queue per URL without ever blocking; when a queue is full
// the event is dropped for that URL with a warning and counted. One worker
// per URL delivers its queue in order, retrying failures with exponential
// backoff (honouring Retry-After on 429 and 503) and giving up, with a log
// line, after a fixed number of attempts.
//
// The body is signed with HMAC-SHA256 under a shared secret:
//
//	X-Drawbridge-Signature: sha256=<hex of HMAC-SHA256(secret, body)>
//
// plus X-Drawbridge-Event (the event kind) and X-Drawbridge-Delivery (an ID
// that stays the same across retries and URLs, for de-duplication).
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// Header names.
const (
	HeaderSignature = "X-Drawbridge-Signature"
	HeaderEvent     = "X-Drawbridge-Event"
	HeaderDelivery  = "X-Drawbridge-Delivery"
	HeaderAttempt   = "X-Drawbridge-Attempt"
)

// Payload is the JSON body of one delivery.
type Payload struct {
	ID         string    `json:"id"`    // = the X-Drawbridge-Delivery header
	Event      string    `json:"event"` // requested, approved, denied, opened, closed
	Time       time.Time `json:"time"`
	Principal  string    `json:"principal"`           // who caused it ("drawbridge" for expiry and lapse)
	Requester  string    `json:"requester,omitempty"` // whose request, when known
	VM         string    `json:"vm"`                  // resource ID
	Port       int       `json:"port"`
	Protocol   string    `json:"protocol"`
	Source     string    `json:"source"`
	EndTimeUtc time.Time `json:"endTimeUtc"`
	GrantID    string    `json:"grantId"`
	RequestID  string    `json:"requestId"`
	Reason     string    `json:"reason"`           // closed/denied: why; requested: AwaitingApproval or ""
	Detail     string    `json:"detail,omitempty"` // justification (requested) or denial reason (denied)
	Text       string    `json:"text"`             // one-line summary (Slack incoming-webhook field)
}

// Options configures a Dispatcher. Zero values take the defaults.
type Options struct {
	URLs   []string
	Secret []byte // HMAC-SHA256 key; required

	QueueSize   int           // events waiting per URL (default 1000)
	Attempts    int           // tries per event and URL (default 5)
	Backoff     time.Duration // wait after the first failure, doubling (default 500ms)
	MaxBackoff  time.Duration // cap of the doubling (default 8s)
	MaxWait     time.Duration // cap of a Retry-After wait (default 60s)
	Timeout     time.Duration // per attempt (default 10s)
	Client      *http.Client  // default: no redirects, Timeout per attempt
	Logger      *slog.Logger
	NewID       func() string // delivery IDs (default: 128 random bits in hex)
	UserAgent   string
	MaxBodyRead int64 // bytes of a response read before closing (default 4096)
}

// Stats counts what a Dispatcher did, over all URLs.
type Stats struct {
	Queued    int64 // event × URL put on a queue
	Dropped   int64 // not queued: queue full or dispatcher closed
	Delivered int64 // answered 2xx
	Failed    int64 // given up on (attempts exhausted, permanent 4xx, shutdown)
	Retries   int64 // attempts after the first
}

// Dispatcher delivers events; it implements jit.EventSink.
type Dispatcher struct {
	opt     Options
	targets []*target
	log     *slog.Logger

	mu      sync.RWMutex
	closed  bool
	closing chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	queued, dropped, delivered, failed, retries atomic.Int64
}

type target struct {
	url   string
	shown string // for logs: scheme://host only (webhook URLs often carry tokens in the path)
	queue chan delivery
}

type delivery struct {
	id    string
	event string
	body  []byte
	sig   string
}

// New validates opt and starts one worker per URL.
func New(opt Options) (*Dispatcher, error) {
	if len(opt.URLs) == 0 {
		return nil, errors.New("webhook: no URL")
	}
	if len(opt.Secret) == 0 {
		return nil, errors.New("webhook: a signing secret is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if opt.QueueSize <= 0 {
		opt.QueueSize = 1000
	}
	if opt.Attempts <= 0 {
		opt.Attempts = 5
	}
	def(&opt.Backoff, 500*time.Millisecond)
	def(&opt.MaxBackoff, 8*time.Second)
	def(&opt.MaxWait, time.Minute)
	def(&opt.Timeout, 10*time.Second)
	if opt.MaxBodyRead <= 0 {
		opt.MaxBodyRead = 4096
	}
	if opt.Client == nil {
		opt.Client = &http.Client{
			// A redirected POST would become a GET elsewhere: treat 3xx as an answer.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.NewID == nil {
		opt.NewID = randomID
	}
	if opt.UserAgent == "" {
		opt.UserAgent = "drawbridge-webhook/1"
	}
	d := &Dispatcher{opt: opt, log: opt.Logger, closing: make(chan struct{})}
	for _, raw := range opt.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("webhook: %q is not an http(s) URL", Redact(raw))
		}
		d.targets = append(d.targets, &target{url: raw, shown: u.Scheme + "://" + u.Host, queue: make(chan delivery, opt.QueueSize)})
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for _, t := range d.targets {
		d.wg.Add(1)
		go d.work(t)
	}
	return d, nil
}

// Redact returns a URL with only its scheme and host, for messages.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host
}

func randomID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// Sign returns the X-Drawbridge-Signature value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header is body's signature under secret
// (constant-time), for receivers written in Go.
func Verify(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(header), []byte(Sign(secret, body)))
}

// Publish queues each event for every URL. It never blocks: an event that
// finds a URL's queue full is dropped for that URL (logged and counted).
func (d *Dispatcher) Publish(evs []jit.Event) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	for _, e := range evs {
		p := PayloadOf(e)
		p.ID = d.opt.NewID()
		body, err := json.Marshal(p)
		if err != nil {
			d.log.Error("webhook: cannot encode event", "event", p.Event, "err", err)
			continue
		}
		dl := delivery{id: p.ID, event: p.Event, body: body, sig: Sign(d.opt.Secret, body)}
		for _, t := range d.targets {
			if d.closed {
				d.dropped.Add(1)
				d.log.Warn("webhook: dispatcher closed, event dropped", "url", t.shown, "event", p.Event, "delivery", p.ID)
				continue
			}
			select {
			case t.queue <- dl:
				d.queued.Add(1)
			default:
				d.dropped.Add(1)
				d.log.Warn("webhook: queue full, event dropped", "url", t.shown, "event", p.Event, "delivery", p.ID, "queue", cap(t.queue), "dropped_total", d.dropped.Load())
			}
		}
	}
}

// Stats returns the counters so far.
func (d *Dispatcher) Stats() Stats {
	return Stats{Queued: d.queued.Load(), Dropped: d.dropped.Load(), Delivered: d.delivered.Load(), Failed: d.failed.Load(), Retries: d.retries.Load()}
}

// Close stops accepting events and delivers what is queued until ctx ends;
// then it abandons the rest (each logged as given up) and returns.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.closing)
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		d.cancel()
		return nil
	case <-ctx.Done():
		d.cancel() // in-flight attempts and waits end at once
		<-done
		return ctx.Err()
	}
}

func (d *Dispatcher) work(t *target) {
	defer d.wg.Done()
	for {
		select {
		case dl := <-t.queue:
			d.deliver(t, dl)
		case <-d.closing:
			for { // drain without waiting for more; bounded by the queue's size
				select {
				case dl := <-t.queue:
					d.deliver(t, dl)
				default:
					return
				}
			}
		}
	}
}

// deliver tries one delivery up to Attempts times.
func (d *Dispatcher) deliver(t *target, dl delivery) {
	var last string
	made := 0
	for attempt := 1; attempt <= d.opt.Attempts; attempt++ {
		made = attempt
		if attempt > 1 {
			d.retries.Add(1)
		}
		status, retryAfter, err := d.post(t, dl, attempt)
		switch {
		case err == nil && status >= 200 && status < 300:
			d.delivered.Add(1)
			if attempt > 1 {
				d.log.Info("webhook: delivered after retries", "url", t.shown, "event", dl.event, "delivery", dl.id, "attempts", attempt)
			}
			return
		case err != nil:
			last = err.Error()
		default:
			last = fmt.Sprintf("HTTP %d", status)
			if !retryable(status) {
				d.failed.Add(1)
				d.log.Error("webhook: giving up: permanent failure", "url", t.shown, "event", dl.event, "delivery", dl.id, "attempts", attempt, "last", last)
				return
			}
		}
		if d.ctx.Err() != nil {
			break
		}
		if attempt == d.opt.Attempts {
			break
		}
		wait := min(d.opt.Backoff<<(attempt-1), d.opt.MaxBackoff)
		if retryAfter > 0 {
			wait = min(retryAfter, d.opt.MaxWait)
		}
		d.log.Warn("webhook: delivery failed, will retry", "url", t.shown, "event", dl.event, "delivery", dl.id, "attempt", attempt, "err", last, "wait", wait)
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-d.ctx.Done():
			timer.Stop()
		}
		if d.ctx.Err() != nil {
			last += "; dispatcher closed"
			break
		}
	}
	d.failed.Add(1)
	d.log.Error("webhook: giving up", "url", t.shown, "event", dl.event, "delivery", dl.id, "attempts", made, "last", last)
}

// post makes one attempt; it returns the status, a Retry-After wait (429
// and 503 only) and a transport error.
func (d *Dispatcher) post(t *target, dl delivery, attempt int) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(d.ctx, d.opt.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(dl.body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", d.opt.UserAgent)
	req.Header.Set(HeaderSignature, dl.sig)
	req.Header.Set(HeaderEvent, dl.event)
	req.Header.Set(HeaderDelivery, dl.id)
	req.Header.Set(HeaderAttempt, strconv.Itoa(attempt))
	resp, err := d.opt.Client.Do(req)
	if err != nil {
		// The URL may carry a token: report the error without it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, d.opt.MaxBodyRead))
	resp.Body.Close()
	var wait time.Duration
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		wait = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return resp.StatusCode, wait, nil
}

// retryable: server errors, 408 and 429 are worth another try; any other
// answer (a 3xx or 4xx) will not change.
func retryable(status int) bool {
	return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 if absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0
		}
		return time.Duration(min(n, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// PayloadOf converts an event (without its delivery ID).
func PayloadOf(e jit.Event) Payload {
	return Payload{
		Event: string(e.Kind), Time: e.Time.UTC(), Principal: e.Principal, Requester: e.Requestor,
		VM: e.VMID, Port: e.Port, Protocol: e.Protocol, Source: e.Source, EndTimeUtc: e.EndTime.UTC(),
		GrantID: e.GrantID, RequestID: e.RequestID, Reason: string(e.Reason), Detail: e.Detail,
		Text: Text(e),
	}
}

// Text is the one-line summary of an event, escaped for Slack (&, <, >).
func Text(e jit.Event) string {
	vm := e.VMID
	if i := strings.LastIndex(vm, "/"); i >= 0 && i < len(vm)-1 {
		vm = vm[i+1:]
	}
	target := fmt.Sprintf("%s port %d", vm, e.Port)
	if e.Protocol != "" && e.Protocol != "*" {
		target += "/" + strings.ToUpper(e.Protocol)
	}
	until := e.EndTime.UTC().Format(time.RFC3339)
	whose := e.Requestor
	if whose == "" {
		whose = "the requester"
	}
	var s string
	switch e.Kind {
	case jit.EventRequested:
		s = fmt.Sprintf("%s requested %s from %s until %s", e.Principal, target, e.Source, until)
		if e.Reason == jit.ReasonAwaitingApproval {
			s += " (awaiting approval)"
		}
		if e.Detail != "" {
			s += ": " + e.Detail
		}
	case jit.EventApproved:
		s = fmt.Sprintf("%s approved %s's request for %s from %s until %s", e.Principal, whose, target, e.Source, until)
	case jit.EventDenied:
		if e.Reason == jit.ReasonApprovalLapsed {
			s = fmt.Sprintf("%s's request for %s from %s lapsed without a decision", whose, target, e.Source)
		} else {
			s = fmt.Sprintf("%s denied %s's request for %s from %s", e.Principal, whose, target, e.Source)
			if e.Detail != "" {
				s += ": " + e.Detail
			}
		}
	case jit.EventOpened:
		s = fmt.Sprintf("opened %s to %s for %s until %s", target, e.Source, whose, until)
	case jit.EventClosed:
		s = fmt.Sprintf("closed %s to %s (%s", target, e.Source, e.Reason)
		if e.Reason != jit.ReasonExpired && e.Principal != "" && e.Principal != jit.SystemPrincipal {
			s += " by " + e.Principal
		}
		s += ")"
	case jit.EventDrift:
		s = fmt.Sprintf("drift on %s, repaired: %s", vm, e.Detail) // by its agent or the reconcile
	case "audit.checkpoint": // internal/server: a signed head of the audit log
		s = "audit log checkpoint: " + e.Detail
	default:
		s = fmt.Sprintf("%s: %s by %s", e.Kind, target, e.Principal)
	}
	s = strings.Join(strings.Fields(s), " ") // one line
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
