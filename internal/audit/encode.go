package audit

import (
	"encoding/json"
	"strconv"
	"time"
)

// ChainJSON is Chain, also returning the chained record's encoding:
// json.Marshal of it, byte for byte, mostly without reflection (stores
// encode every record they append, inside the writing transaction). The
// fields are written directly when that is simple to get exactly right:
// strings json.Marshal writes as they are, and Before and After that
// Chain's canonicalisation left valid (canonical JSON is compact, with
// what json.Marshal escapes already escaped); otherwise json.Marshal
// encodes it, and its error, if any, is returned.
func ChainJSON(prev Record, next Record) (Record, []byte, error) {
	r, canonical := chain(prev, next)
	if !canonical || !plainString(r.Principal) || !plainString(r.SourceAddress) || !plainString(r.Operation) || !plainString(r.Target) ||
		!plainString(r.Result) || !plainString(r.Detail) || !plainString(r.PrevHash) || !plainString(r.Hash) {
		b, err := json.Marshal(r)
		return r, b, err
	}
	t, err := r.Time.MarshalJSON()
	if err != nil {
		b, err := json.Marshal(r) // the same error, from the same place
		return r, b, err
	}
	// Room for every field and key, so the record is built without growing.
	b := make([]byte, 0, 160+len(t)+len(r.Principal)+len(r.SourceAddress)+len(r.Operation)+len(r.Target)+len(r.Result)+
		len(r.Detail)+len(r.Before)+len(r.After)+len(r.PrevHash)+len(r.Hash))
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, r.Seq, 10)
	b = append(b, `,"time":`...)
	b = append(b, t...)
	b = appendField(b, "principal", r.Principal)
	if r.SourceAddress != "" {
		b = appendField(b, "sourceAddress", r.SourceAddress)
	}
	b = appendField(b, "operation", r.Operation)
	if r.Target != "" {
		b = appendField(b, "target", r.Target)
	}
	b = appendField(b, "result", r.Result)
	if r.Detail != "" {
		b = appendField(b, "detail", r.Detail)
	}
	if len(r.Before) > 0 {
		b = append(append(b, `,"before":`...), r.Before...)
	}
	if len(r.After) > 0 {
		b = append(append(b, `,"after":`...), r.After...)
	}
	b = appendField(b, "prevHash", r.PrevHash)
	b = appendField(b, "hash", r.Hash)
	return r, append(b, '}'), nil
}

func appendField(b []byte, name, plain string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':', '"')
	b = append(b, plain...)
	return append(b, '"')
}

// plainString reports whether json.Marshal writes s as it is between
// quotes: printable ASCII without the characters it escapes.
func plainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// AppendString appends s as json.Marshal (and so the canonical form)
// writes it, for a CanonicalEncoder; ok is false unless s is plain
// (printable ASCII without characters json.Marshal escapes).
func AppendString(dst []byte, s string) ([]byte, bool) {
	if !plainString(s) {
		return dst, false
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"'), true
}

// AppendTime appends t as json.Marshal writes it (RFC 3339 with
// nanoseconds, quoted), for a CanonicalEncoder; ok is false where
// json.Marshal fails (a year outside 0-9999).
func AppendTime(dst []byte, t time.Time) ([]byte, bool) {
	b, err := t.MarshalJSON()
	if err != nil {
		return dst, false
	}
	return append(dst, b...), true
}
