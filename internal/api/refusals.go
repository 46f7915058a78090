package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
)

// OpRefusalSummary is the operation of the record that stands for the
// calls a principal or source made after using up its refusals for a
// window (auth.RefusalLimiter): answered 429, audited together.
const OpRefusalSummary = "refused.summary"

// refusalFlushEvery is how often serve writes ended windows' summaries on
// its own (the server also flushes on a timer and at shutdown).
const refusalFlushEvery = time.Second

// isRefusal reports whether an authenticated call that ended with status
// was refused, and so is audited and counted against the caller's
// refusals: every 4xx but 405 (a client bug, not an attempt) and 429
// (already counted).
func isRefusal(status int) bool {
	return status >= 400 && status < 500 && status != http.StatusMethodNotAllowed && status != http.StatusTooManyRequests
}

// refusalsAllow answers 429 (with Retry-After) and returns false when the
// caller has used up its refusals for the window.
func (s *Server) refusalsAllow(w http.ResponseWriter, principal, address string, now time.Time) bool {
	l := s.cfg.RefusalLimiter
	if l == nil {
		return true
	}
	ok, wait := l.Allow(principal, address, now)
	if ok {
		return true
	}
	secs := int(math.Ceil(wait.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, http.StatusTooManyRequests, "TooManyRequests", "", fmt.Sprintf("too many refused calls from this principal or address; retry in %ds (these calls are counted in one audit record)", secs))
	return false
}

// refused counts a refusal against the caller, and writes the summaries
// of ended windows at most every refusalFlushEvery.
func (s *Server) refused(principal, address string, now time.Time) {
	l := s.cfg.RefusalLimiter
	if l == nil {
		return
	}
	l.Refused(principal, address, now)
	if last := s.lastFlush.Load(); now.UnixNano()-last >= int64(refusalFlushEvery) && s.lastFlush.CompareAndSwap(last, now.UnixNano()) {
		s.FlushRefusals(context.Background(), now, false)
	}
}

// FlushRefusals audits one record for each window of the refusal limiter
// that ended by now having turned calls away (all: and each still open,
// ended now). The server calls it on a timer, and with all before it stops.
func (s *Server) FlushRefusals(ctx context.Context, now time.Time, all bool) {
	l := s.cfg.RefusalLimiter
	if l == nil || s.cfg.Auditor == nil {
		return
	}
	for _, sum := range l.Summaries(now, all) {
		principal, by := sum.Principal, "principal"
		if sum.BySource {
			by = "source address"
		}
		if principal == "" {
			principal = "(several principals)"
		}
		rec := audit.Record{
			Time: now.UTC(), Principal: principal, SourceAddress: sum.Source, Operation: OpRefusalSummary, Target: "/", Result: audit.Denied,
			Detail: fmt.Sprintf("429 %d calls turned away from %s to %s, after the %s's %d refusals audited one by one in that window",
				sum.TurnedAway, sum.Start.UTC().Format(time.RFC3339), sum.End.UTC().Format(time.RFC3339), by, sum.Refused),
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := s.cfg.Auditor.Record(wctx, rec); err != nil {
			s.cfg.Logger.Error("audit of refused-call summary failed", "principal", principal, "err", err)
		}
		cancel()
	}
}

// lastFlushTime is when serve last flushed refusal summaries (Unix ns).
type lastFlushTime = atomic.Int64

// maxErrorMessage bounds an error message's bytes: messages quote the
// caller's input (a 4 MiB VM ID would otherwise come back in full).
const maxErrorMessage = 1024
