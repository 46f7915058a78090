package audit

import (
	"bytes"
	"encoding/json"
	"slices"
)

// canonicalJSON re-encodes valid JSON with sorted object keys and no
// insignificant whitespace, keeping numbers as written. Empty or "null"
// becomes empty; invalid JSON is kept byte for byte (still hashed, so still
// tamper-evident).
//
// The result is defined as json.Marshal of the value json.Decoder (with
// UseNumber) decodes; slowCanonicalize computes exactly that. The fast
// path below produces the same bytes without building a map[string]any,
// and hands anything it is not sure about (invalid input, trailing data,
// duplicate keys, very deep nesting) to the slow path.
func canonicalJSON(b json.RawMessage) json.RawMessage {
	out, _ := canonicalize(b)
	return out
}

// canonicalize is canonicalJSON, also reporting whether the result is
// empty or valid JSON (as json.Marshal writes it: compact, with the
// characters it escapes escaped). ok is false only for invalid input,
// which is returned as it is.
func canonicalize(b json.RawMessage) (json.RawMessage, bool) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 || string(t) == "null" {
		return nil, true
	}
	c := canonicalizer{in: t, out: make([]byte, 0, len(t))}
	if c.value(0) {
		c.skipSpace()
		if c.pos == len(c.in) {
			return c.out, true
		}
	}
	return slowCanonicalize(b)
}

func slowCanonicalize(b json.RawMessage) (json.RawMessage, bool) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 || string(t) == "null" {
		return nil, true
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return b, false
	}
	out, err := json.Marshal(v)
	if err != nil {
		return b, false
	}
	return out, true
}

// canonicalizer is a strict JSON scanner that writes the canonical encoding
// of what it reads to out. Every method returns false when the input is not
// something it handles exactly like the slow path; the caller then falls
// back to it.
type canonicalizer struct {
	in  []byte
	pos int
	out []byte
}

const maxCanonicalDepth = 512

func (c *canonicalizer) skipSpace() {
	for c.pos < len(c.in) {
		switch c.in[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return
		}
	}
}

func (c *canonicalizer) value(depth int) bool {
	if depth > maxCanonicalDepth {
		return false
	}
	c.skipSpace()
	if c.pos >= len(c.in) {
		return false
	}
	switch ch := c.in[c.pos]; {
	case ch == '{':
		return c.object(depth)
	case ch == '[':
		return c.array(depth)
	case ch == '"':
		s, ok := c.str()
		if !ok {
			return false
		}
		c.out = append(c.out, s...)
		return true
	case ch == '-' || (ch >= '0' && ch <= '9'):
		return c.number()
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(c.in[c.pos:], []byte(lit)) {
				c.pos += len(lit)
				c.out = append(c.out, lit...)
				return true
			}
		}
		return false
	}
}

// str reads a string literal at pos and returns its canonical encoding.
// Plain printable ASCII without characters json.Marshal escapes is copied;
// anything else is decoded and re-encoded with encoding/json itself.
func (c *canonicalizer) str() ([]byte, bool) {
	start := c.pos
	i := c.pos + 1
	plain := true
	for {
		if i >= len(c.in) {
			return nil, false
		}
		ch := c.in[i]
		if ch == '"' {
			break
		}
		if ch == '\\' {
			plain = false
			i += 2
			continue
		}
		if ch < 0x20 || ch >= 0x80 || ch == '<' || ch == '>' || ch == '&' {
			plain = false
		}
		i++
	}
	c.pos = i + 1
	lit := c.in[start:c.pos]
	if plain {
		return lit, true
	}
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return nil, false
	}
	enc, err := json.Marshal(s)
	if err != nil {
		return nil, false
	}
	return enc, true
}

// number copies a JSON number, checking its grammar as the decoder does.
func (c *canonicalizer) number() bool {
	start, i, in := c.pos, c.pos, c.in
	digits := func() bool {
		s := i
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
		return i > s
	}
	if i < len(in) && in[i] == '-' {
		i++
	}
	if i < len(in) && in[i] == '0' {
		i++
	} else if !digits() {
		return false
	}
	if i < len(in) && in[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	c.pos = i
	c.out = append(c.out, in[start:i]...)
	return true
}

func (c *canonicalizer) array(depth int) bool {
	c.pos++ // '['
	c.out = append(c.out, '[')
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == ']' {
		c.pos++
		c.out = append(c.out, ']')
		return true
	}
	for {
		if !c.value(depth + 1) {
			return false
		}
		c.skipSpace()
		if c.pos >= len(c.in) {
			return false
		}
		switch c.in[c.pos] {
		case ',':
			c.pos++
			c.out = append(c.out, ',')
		case ']':
			c.pos++
			c.out = append(c.out, ']')
			return true
		default:
			return false
		}
	}
}

type canonMember struct {
	key  []byte // the key's characters, for sorting (decoded if escaped)
	enc  []byte // canonical encoding of the key
	from int    // the member's value in out: out[from:to]
	to   int
}

func (c *canonicalizer) object(depth int) bool {
	c.pos++ // '{'
	c.skipSpace()
	if c.pos < len(c.in) && c.in[c.pos] == '}' {
		c.pos++
		c.out = append(c.out, '{', '}')
		return true
	}
	// Values are written to out in input order, then the object is
	// rewritten in key order over the same region. Keys and plain key
	// encodings are slices of the input, which is never modified.
	base := len(c.out)
	var members []canonMember
	for {
		c.skipSpace()
		if c.pos >= len(c.in) || c.in[c.pos] != '"' {
			return false
		}
		enc, ok := c.str()
		if !ok {
			return false
		}
		var key []byte
		if len(enc) >= 2 && bytes.IndexByte(enc, '\\') < 0 {
			key = enc[1 : len(enc)-1]
		} else {
			var k string
			if err := json.Unmarshal(enc, &k); err != nil {
				return false
			}
			key = []byte(k)
		}
		c.skipSpace()
		if c.pos >= len(c.in) || c.in[c.pos] != ':' {
			return false
		}
		c.pos++
		from := len(c.out)
		if !c.value(depth + 1) {
			return false
		}
		members = append(members, canonMember{key: key, enc: enc, from: from, to: len(c.out)})
		c.skipSpace()
		if c.pos >= len(c.in) {
			return false
		}
		if c.in[c.pos] == ',' {
			c.pos++
			continue
		}
		if c.in[c.pos] != '}' {
			return false
		}
		c.pos++
		break
	}
	slices.SortStableFunc(members, func(a, b canonMember) int { return bytes.Compare(a.key, b.key) })
	for i := 1; i < len(members); i++ {
		if bytes.Equal(members[i].key, members[i-1].key) {
			return false // duplicate keys: the decoder keeps the last one
		}
	}
	vals := slices.Clone(c.out[base:])
	c.out = append(c.out[:base], '{')
	for i, m := range members {
		if i > 0 {
			c.out = append(c.out, ',')
		}
		c.out = append(c.out, m.enc...)
		c.out = append(c.out, ':')
		c.out = append(c.out, vals[m.from-base:m.to-base]...)
	}
	c.out = append(c.out, '}')
	return true
}
