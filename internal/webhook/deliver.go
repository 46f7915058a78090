package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// work is the delivery loop of one URL; on Close it drains the queue.
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
