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
	burst  float64
	refill time.Duration
	max    int

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
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
	return &FailureLimiter{burst: float64(burst), refill: refill, max: maxSources, buckets: map[string]*bucket{}}
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

// Allow reports whether source may attempt to authenticate at now, and if
// not, how long until it may.
func (l *FailureLimiter) Allow(source string, now time.Time) (ok bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[SourceKey(source)]
	if b == nil {
		return true, 0
	}
	l.update(b, now)
	if b.tokens >= 1 {
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) * float64(l.refill))
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
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	l.update(b, now)
	b.tokens--
	if b.tokens < 0 {
		b.tokens = 0
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
		l.update(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// update refills b for the time since it was last updated. A clock that
// steps backwards refills nothing (rather than draining the bucket).
func (l *FailureLimiter) update(b *bucket, now time.Time) {
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens += float64(elapsed) / float64(l.refill)
		if b.tokens > l.burst {
			b.tokens = l.burst
		}
		b.at = now
	}
}
