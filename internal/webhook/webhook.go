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
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
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
