package armsim

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Faults is what the simulator does wrong, on purpose. Rates are
// probabilities per request in [0, 1]; every fault happens before the
// request changes anything, except DropAfterRate, which applies the change
// and then drops the connection (the client never sees the answer).
type Faults struct {
	ThrottleRate  float64       // 429 TooManyRequests with Retry-After
	ErrorRate     float64       // 500 InternalServerError
	DropRate      float64       // connection closed without an answer
	DropAfterRate float64       // write applied, then connection closed
	SlowRate      float64       // answer delayed by Slow
	Slow          time.Duration // delay of a slow answer
	// RetryAfter is the delay a 429 asks for; it is sent in retry-after-ms
	// (and rounded up to whole seconds in Retry-After). Default 10ms.
	RetryAfter time.Duration
	// WritesPerSecond and WriteBurst, if set, throttle PUT/DELETE with a
	// token bucket as ARM does per subscription: a write finding the bucket
	// empty gets 429 with the time until the next token in Retry-After.
	WritesPerSecond float64
	WriteBurst      int
	Seed            uint64
}

type faults struct {
	mu     sync.Mutex
	f      Faults
	rng    *rand.Rand
	tokens float64
	last   time.Time
	// slot is when the last throttled writer was told to come back: each
	// 429 names the next free slot (one token apart), as ARM's Retry-After
	// says when the caller's quota will have room, so throttled writers
	// queue instead of all retrying at the same instant.
	slot   time.Time
	counts FaultCounts
}

// FaultCounts counts the faults injected so far.
type FaultCounts struct {
	Throttled, Errors, Dropped, DroppedAfter, Slowed int
}

func (f *faults) init() { f.rng = rand.New(rand.NewPCG(1, 2)) }

// SetFaults replaces the fault configuration (the zero value: none).
func (s *Server) SetFaults(f Faults) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	if f.RetryAfter <= 0 {
		f.RetryAfter = 10 * time.Millisecond
	}
	s.faults.f = f
	s.faults.rng = rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))
	s.faults.tokens = float64(f.WriteBurst)
	s.faults.last = time.Now()
}

// FaultCounts returns how many faults were injected.
func (s *Server) FaultCounts() FaultCounts {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.counts
}

type faultKind int

const (
	noFault faultKind = iota
	throttle
	serverError
	drop
	dropAfter
)

// pick decides the fault for one request; wait is the Retry-After of a 429
// and slow the delay to add before answering.
func (f *faults) pick(write bool) (k faultKind, wait, slow time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.f
	if c.SlowRate > 0 && f.rng.Float64() < c.SlowRate {
		slow = c.Slow
		f.counts.Slowed++
	}
	if write && c.WritesPerSecond > 0 {
		now := time.Now()
		f.tokens = math.Min(float64(c.WriteBurst), f.tokens+now.Sub(f.last).Seconds()*c.WritesPerSecond)
		f.last = now
		if f.tokens < 1 {
			f.counts.Throttled++
			step := time.Duration(float64(time.Second) / c.WritesPerSecond)
			if f.slot.Before(now) {
				f.slot = now.Add(time.Duration((1 - f.tokens) / c.WritesPerSecond * float64(time.Second)))
			} else {
				f.slot = f.slot.Add(step)
			}
			return throttle, f.slot.Sub(now), slow
		}
		f.tokens--
	}
	r := f.rng.Float64()
	switch {
	case r < c.ThrottleRate:
		f.counts.Throttled++
		return throttle, c.RetryAfter, slow
	case r < c.ThrottleRate+c.ErrorRate:
		f.counts.Errors++
		return serverError, 0, slow
	case r < c.ThrottleRate+c.ErrorRate+c.DropRate:
		f.counts.Dropped++
		return drop, 0, slow
	case write && r < c.ThrottleRate+c.ErrorRate+c.DropRate+c.DropAfterRate:
		f.counts.DroppedAfter++
		return dropAfter, 0, slow
	}
	return noFault, 0, slow
}

// remainingWrites is what ARM reports in
// x-ms-ratelimit-remaining-subscription-writes: the writes left in the
// bucket, or -1 without a write throttle.
func (f *faults) remainingWrites() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.f.WritesPerSecond <= 0 {
		return -1
	}
	return int(f.tokens)
}

func setRetryAfter(h http.Header, d time.Duration) {
	h.Set("retry-after-ms", strconv.FormatInt(max(1, d.Milliseconds()), 10))
	h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10))
}

// hangUp closes the connection without answering.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			_ = c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// Call is one request the simulator answered, with the Azure RBAC action
// that authorises it ("" for calls ARM authorises without one, such as
// polling an operation).
type Call struct {
	Method, Path, Action string
	Status               int
}

// Calls returns the calls recorded so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// ResetCalls forgets the recorded calls.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}
