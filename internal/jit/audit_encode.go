package jit

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
)

// Requests and grants are the states audited on every request; they write
// their canonical JSON themselves (audit.CanonicalEncoder) rather than be
// encoded by json.Marshal and then canonicalised, which was a tenth of the
// writer's time. The keys are json.Marshal's, in sorted order; a test
// checks the bytes against canonicalising json.Marshal's encoding.
var (
	_ audit.CanonicalEncoder = Grant{}
	_ audit.CanonicalEncoder = Request{}
)

// AppendCanonicalJSON implements audit.CanonicalEncoder.
func (g Grant) AppendCanonicalJSON(b []byte) ([]byte, bool) {
	w := canonWriter{b: b, ok: true}
	w.grant(g)
	return w.b, w.ok
}

// AppendCanonicalJSON implements audit.CanonicalEncoder.
func (r Request) AppendCanonicalJSON(b []byte) ([]byte, bool) {
	w := canonWriter{b: b, ok: true}
	w.raw(`{"grants":`)
	if r.Grants == nil {
		w.raw("null")
	} else {
		w.raw("[")
		for i, g := range r.Grants {
			if i > 0 {
				w.raw(",")
			}
			w.grant(g)
		}
		w.raw("]")
	}
	w.str(`,"id":`, r.ID)
	if r.Justification != "" {
		w.str(`,"justification":`, r.Justification)
	}
	w.str(`,"policyId":`, r.PolicyID)
	w.str(`,"requestor":`, r.Requestor)
	if r.SourceAddress != "" {
		w.str(`,"sourceAddress":`, r.SourceAddress)
	}
	w.time(`,"startTimeUtc":`, r.StartTime)
	w.raw("}")
	return w.b, w.ok
}

// canonWriter appends JSON members (key text given with its punctuation),
// remembering whether every value could be written exactly (ok).
type canonWriter struct {
	b  []byte
	ok bool
}

func (w *canonWriter) raw(s string) { w.b = append(w.b, s...) }

func (w *canonWriter) str(key, v string) {
	w.b = append(w.b, key...)
	if w.ok {
		w.b, w.ok = audit.AppendString(w.b, v)
	}
}

func (w *canonWriter) time(key string, t time.Time) {
	w.b = append(w.b, key...)
	if w.ok {
		w.b, w.ok = audit.AppendTime(w.b, t)
	}
}

func (w *canonWriter) int(key string, n int) {
	w.b = append(w.b, key...)
	w.b = strconv.AppendInt(w.b, int64(n), 10)
}

func (w *canonWriter) grant(g Grant) {
	w.raw(`{"applied":`)
	w.b = strconv.AppendBool(w.b, g.Applied)
	if !g.AppliedAt.IsZero() {
		w.time(`,"appliedAt":`, g.AppliedAt)
	}
	if g.ConnectTo != (netip.AddrPort{}) {
		b, _ := g.ConnectTo.MarshalText()
		w.str(`,"connectTo":`, string(b))
	}
	w.time(`,"endTimeUtc":`, g.EndTime)
	if !g.EndedAt.IsZero() {
		w.time(`,"endedAt":`, g.EndedAt)
	}
	w.str(`,"id":`, g.ID)
	w.str(`,"policyId":`, g.PolicyID)
	w.int(`,"port":`, g.Port)
	w.str(`,"protocol":`, g.Protocol)
	if g.ProviderError != "" {
		w.str(`,"providerError":`, g.ProviderError)
	}
	w.str(`,"requestId":`, g.RequestID)
	w.str(`,"source":`, g.Source.String())
	w.time(`,"startTimeUtc":`, g.StartTime)
	w.str(`,"status":`, string(g.Status))
	w.str(`,"statusReason":`, string(g.StatusReason))
	w.str(`,"vmId":`, g.VMID)
	w.raw("}")
}
