package jit

import (
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
	ok := true
	str := func(key, v string) {
		b = append(b, key...)
		if ok {
			b, ok = audit.AppendString(b, v)
		}
	}
	tm := func(key string, t time.Time) {
		b = append(b, key...)
		if ok {
			b, ok = audit.AppendTime(b, t)
		}
	}
	b = append(b, `{"applied":`...)
	b = strconv.AppendBool(b, g.Applied)
	if !g.AppliedAt.IsZero() {
		tm(`,"appliedAt":`, g.AppliedAt)
	}
	tm(`,"endTimeUtc":`, g.EndTime)
	if !g.EndedAt.IsZero() {
		tm(`,"endedAt":`, g.EndedAt)
	}
	str(`,"id":`, g.ID)
	str(`,"policyId":`, g.PolicyID)
	b = append(b, `,"port":`...)
	b = strconv.AppendInt(b, int64(g.Port), 10)
	str(`,"protocol":`, g.Protocol)
	if g.ProviderError != "" {
		str(`,"providerError":`, g.ProviderError)
	}
	str(`,"requestId":`, g.RequestID)
	str(`,"source":`, g.Source.String())
	tm(`,"startTimeUtc":`, g.StartTime)
	str(`,"status":`, string(g.Status))
	str(`,"statusReason":`, string(g.StatusReason))
	str(`,"vmId":`, g.VMID)
	return append(b, '}'), ok
}

// AppendCanonicalJSON implements audit.CanonicalEncoder.
func (r Request) AppendCanonicalJSON(b []byte) ([]byte, bool) {
	ok := true
	str := func(key, v string) {
		b = append(b, key...)
		if ok {
			b, ok = audit.AppendString(b, v)
		}
	}
	b = append(b, `{"grants":`...)
	if r.Grants == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, g := range r.Grants {
			if i > 0 {
				b = append(b, ',')
			}
			var gok bool
			if b, gok = g.AppendCanonicalJSON(b); !gok {
				ok = false
			}
		}
		b = append(b, ']')
	}
	str(`,"id":`, r.ID)
	if r.Justification != "" {
		str(`,"justification":`, r.Justification)
	}
	str(`,"policyId":`, r.PolicyID)
	str(`,"requestor":`, r.Requestor)
	if r.SourceAddress != "" {
		str(`,"sourceAddress":`, r.SourceAddress)
	}
	b = append(b, `,"startTimeUtc":`...)
	if ok {
		b, ok = audit.AppendTime(b, r.StartTime)
	}
	return append(b, '}'), ok
}
