package audit

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"strings"
	"testing"
)

var canonicalCases = []string{
	``, `null`, ` null `, `{}`, `[]`, `  {"b":1, "a" : [1, 2.50, -0, 1e10, 1E-3, true, false, null]}  `,
	`{"z":{"y":"x","a":"<&>"},"é":"\u00e9","a\u0000":"\n\t\"\\\/","\u2028":"\u2029"}`,
	`{"a":1,"a":2}`, `{"a":1}]`, `{"a":1}}`, `[1,]`, `{"a":}`, `01`, `1.`, `-`, `"\x"`, "\"\xff\xfe\"",
	`{"a":"b"} x`, `tru`, `[true false]`, `{"a" 1}`, `"` + strings.Repeat("x", 100) + `"`,
	strings.Repeat("[", 600) + strings.Repeat("]", 600), `{"B":1,"a":2,"_":3,"":4}`,
	`{"s":"` + "\x01" + `"}`, `[1e+5, -0.0e-0, 123456789012345678901234567890]`, "\"a\u2028b\"",
}

func TestCanonicalJSONMatchesSlowPath(t *testing.T) {
	for _, c := range canonicalCases {
		if got, want := canonicalJSON([]byte(c)), slowCanonicalJSON([]byte(c)); !bytes.Equal(got, want) {
			t.Errorf("canonicalJSON(%q) = %q, want %q", c, got, want)
		}
	}
	r := rand.New(rand.NewSource(1))
	for range 2000 {
		b, _ := json.MarshalIndent(randomValue(r, 0), "", " ")
		got, want := canonicalJSON(b), slowCanonicalJSON(b)
		if !bytes.Equal(got, want) {
			t.Fatalf("canonicalJSON(%s) = %s, want %s", b, got, want)
		}
		if again := canonicalJSON(got); !bytes.Equal(again, got) {
			t.Fatalf("canonicalJSON is not idempotent on %s: %s", got, again)
		}
	}
}

func randomValue(r *rand.Rand, depth int) any {
	n := r.Intn(8)
	if depth > 4 {
		n = r.Intn(4)
	}
	switch n {
	case 0:
		return nil
	case 1:
		return r.Intn(2) == 0
	case 2:
		return r.NormFloat64() * 1e6
	case 3:
		return randomString(r)
	case 4, 5:
		var a []any
		for range r.Intn(4) {
			a = append(a, randomValue(r, depth+1))
		}
		return a
	default:
		m := map[string]any{}
		for range r.Intn(5) {
			m[randomString(r)+string(rune('a'+r.Intn(26)))] = randomValue(r, depth+1)
		}
		return m
	}
}

func FuzzCanonicalJSON(f *testing.F) {
	for _, c := range canonicalCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := canonicalJSON(b), slowCanonicalJSON(b); !bytes.Equal(got, want) {
			t.Errorf("canonicalJSON(%q) = %q, want %q", b, got, want)
		}
	})
}

func randomString(r *rand.Rand) string {
	runes := []rune("ab<>&\"\\\n\u00e9\u2028\x01 /z")
	var sb strings.Builder
	for range r.Intn(6) {
		sb.WriteRune(runes[r.Intn(len(runes))])
	}
	return sb.String()
}

// slowCanonicalJSON is the reference the fast path is checked against.
func slowCanonicalJSON(b json.RawMessage) json.RawMessage {
	out, _ := slowCanonicalize(b)
	return out
}
