package auth

import (
	"sort"
	"sync"
	"time"
)

// RefusalLimiter bounds how many refused calls (403, 404 and other
// refusals of an authenticated call) each principal and each source
// address may make per window, so that a token holder cannot flood the
// audit log: the first PerPrincipal (PerSource) refusals of a window are
// audited one by one; after that the principal's (source's) calls are
// answered 429 until the window ends, and what was turned away is counted
// and reported once, as one Summary, when the window has ended.
//
// Windows are fixed: one starts at a key's first refusal and lasts Window.
// It is safe for concurrent use; the clock is passed in to every call.
type RefusalLimiter struct {
	window       time.Duration
	perPrincipal int
	perSource    int
	max          int

	mu   sync.Mutex
	keys map[refusalKey]*refusalWindow
	done []Summary // ended windows replaced before Summaries reported them
}

type refusalKey struct {
	bySource bool
	name     string // principal, or SourceKey of the address
}

type refusalWindow struct {
	start      time.Time
	refused    int // refusals counted (and audited) this window
	turnedAway int // calls answered 429 this window
	principal  string
	source     string
}

// Summary reports the calls a principal or source made in one ended
// window after it had used up its refusals: they were answered 429 and
// not audited one by one.
type Summary struct {
	BySource   bool // the source's limit (else the principal's) was reached
	Principal  string
	Source     string // an address of the source (its key for IPv6 is its /64)
	Start, End time.Time
	Refused    int // refusals audited one by one in the window
	TurnedAway int
}

// NewRefusalLimiter allows perPrincipal refusals per principal and
// perSource per source address in each window, tracking at most maxKeys
// keys (0: 100000; beyond that, windows that turned nothing away are
// forgotten first).
func NewRefusalLimiter(window time.Duration, perPrincipal, perSource, maxKeys int) *RefusalLimiter {
	if window <= 0 {
		window = time.Minute
	}
	if maxKeys <= 0 {
		maxKeys = 100000
	}
	return &RefusalLimiter{window: window, perPrincipal: max(1, perPrincipal), perSource: max(1, perSource), max: maxKeys, keys: map[refusalKey]*refusalWindow{}}
}

func (l *RefusalLimiter) keysOf(principal, source string) [2]refusalKey {
	return [2]refusalKey{{name: principal}, {bySource: true, name: SourceKey(source)}}
}

func (l *RefusalLimiter) limit(k refusalKey) int {
	if k.bySource {
		return l.perSource
	}
	return l.perPrincipal
}

// Allow reports whether principal, calling from source, may be served
// now; if not, the call is counted as turned away and wait is how long
// until the window that refuses it ends.
func (l *RefusalLimiter) Allow(principal, source string, now time.Time) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range l.keysOf(principal, source) {
		w := l.keys[k]
		if w == nil || !now.Before(w.start.Add(l.window)) || w.refused < l.limit(k) {
			continue
		}
		w.turnedAway++
		if w.principal != principal {
			w.principal = "" // several principals behind one source
		}
		wait = max(wait, w.start.Add(l.window).Sub(now))
	}
	return wait == 0, wait
}

// Refused counts a refusal of principal's call from source. Ended windows
// are left for Summaries to report; a refusal after its key's window
// ended starts a new window then.
func (l *RefusalLimiter) Refused(principal, source string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range l.keysOf(principal, source) {
		w := l.keys[k]
		if w != nil && !now.Before(w.start.Add(l.window)) {
			if s, ok := l.summary(k, w); ok && len(l.done) < l.max {
				l.done = append(l.done, s) // bounded, should Summaries never be called
			}
			w = nil
		}
		if w == nil {
			if len(l.keys) >= l.max {
				l.evict()
			}
			w = &refusalWindow{start: now, principal: principal, source: source}
			l.keys[k] = w
		}
		if w.principal != principal {
			w.principal = "" // several principals behind one source
		}
		w.refused++
	}
}

// evict forgets windows that turned nothing away (the oldest first, half
// of them), keeping every count a summary still needs.
func (l *RefusalLimiter) evict() {
	type kw struct {
		k refusalKey
		w *refusalWindow
	}
	var quiet []kw
	for k, w := range l.keys {
		if w.turnedAway == 0 {
			quiet = append(quiet, kw{k, w})
		}
	}
	sort.Slice(quiet, func(i, j int) bool { return quiet[i].w.start.Before(quiet[j].w.start) })
	for _, q := range quiet[:(len(quiet)+1)/2] {
		delete(l.keys, q.k)
	}
}

// Summaries returns (and forgets) the windows that ended by now having
// turned calls away, oldest first; ended windows that turned nothing away
// are forgotten silently. With all (at shutdown), windows still open are
// ended now and reported too.
func (l *RefusalLimiter) Summaries(now time.Time, all bool) []Summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.done
	l.done = nil
	for k, w := range l.keys {
		open := now.Before(w.start.Add(l.window))
		if open && !all {
			continue
		}
		delete(l.keys, k)
		if s, ok := l.summary(k, w); ok {
			if open {
				s.End = now
			}
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// summary is the Summary of k's ended window w, if it turned calls away.
func (l *RefusalLimiter) summary(k refusalKey, w *refusalWindow) (Summary, bool) {
	s := Summary{BySource: k.bySource, Principal: w.principal, Source: w.source, Start: w.start, End: w.start.Add(l.window), Refused: w.refused, TurnedAway: w.turnedAway}
	return s, w.turnedAway > 0
}
