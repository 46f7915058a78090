package auth

import (
	"net/netip"
	"sync"
	"time"
)

// FailureLimiter limits failed authentications per source address with a
// token bucket: each source may fail Burst times in a row, then one more
// failure is allowed every Refill. While a source's bucket is empty, the API
// should refuse its authentication attempts (429) without checking the
// credential, so guessing tokens or passwords is too slow to matter.
// Successful authentications cost nothing.
//
// It is safe for concurrent use. The clock is passed in to every call.
type FailureLimiter struct {
	burst  time.Duration // burst × refill: how far ahead tat may run
	refill time.Duration
	max    int

	mu      sync.Mutex
	buckets map[string]*bucket
}

// bucket is a token bucket kept as its "theoretical arrival time" (the
// GCRA form): the bucket is full when tat <= now, and holds
// burst - (tat-now)/refill tokens otherwise. Keeping a time instead of a
// fractional token count makes every answer exact to the nanosecond.
type bucket struct {
	tat  time.Time
	seen time.Time // latest time seen, so a clock stepping back refills nothing and drains nothing
}

// NewFailureLimiter allows burst failures per source, refilling one every
// refill, and tracks at most maxSources sources (0: 100000); beyond that,
// full buckets are forgotten first and a new source is tracked anyway.
func NewFailureLimiter(burst int, refill time.Duration, maxSources int) *FailureLimiter {
	if burst < 1 {
		burst = 1
	}
	if refill <= 0 {
		refill = time.Second
	}
	if maxSources <= 0 {
		maxSources = 100000
	}
	return &FailureLimiter{burst: time.Duration(burst) * refill, refill: refill, max: maxSources, buckets: map[string]*bucket{}}
}

// SourceKey is the key a source address is limited under: the address
// itself for IPv4, its /64 for IPv6 (one host usually owns a whole /64, so
// per-address limits would be trivial to dodge). Anything unparsable is its
// own key.
func SourceKey(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	var a netip.Addr
	if err == nil {
		a = ap.Addr()
	} else if a, err = netip.ParseAddr(addr); err != nil {
		return addr
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// Allow reports whether source may attempt to authenticate at now (it has
// at least one failure left), and if not, how long until it may.
func (l *FailureLimiter) Allow(source string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[SourceKey(source)]
	if b == nil {
		return true, 0
	}
	now = b.clock(now)
	// One token left means tat-now <= (burst-1)·refill.
	if wait := b.tat.Sub(now) - (l.burst - l.refill); wait > 0 {
		return false, wait
	}
	return true, 0
}

// Fail records a failed authentication from source at now.
func (l *FailureLimiter) Fail(source string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := SourceKey(source)
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.prune(now)
		}
		b = &bucket{tat: now, seen: now}
		l.buckets[key] = b
	}
	now = b.clock(now)
	if b.tat.Before(now) {
		b.tat = now
	}
	b.tat = b.tat.Add(l.refill)
	// The bucket cannot go below empty: one refill always lets a source
	// try again, however many failures it piled up.
	if limit := now.Add(l.burst); b.tat.After(limit) {
		b.tat = limit
	}
}

// Prune forgets sources whose buckets have refilled completely (they would
// behave the same as unknown sources). Call it now and then.
func (l *FailureLimiter) Prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prune(now)
}

// Tracked returns the number of sources currently tracked.
func (l *FailureLimiter) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

func (l *FailureLimiter) prune(now time.Time) {
	for k, b := range l.buckets {
		if !b.tat.After(now) {
			delete(l.buckets, k)
		}
	}
}

// clock returns now, or the latest time b has seen if the clock stepped back.
func (b *bucket) clock(now time.Time) time.Time {
	if now.Before(b.seen) {
		return b.seen
	}
	b.seen = now
	return now
}
