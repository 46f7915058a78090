package audit

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzChainRoundTrip puts arbitrary bytes in every string field of a record
// (and in its before and after states), appends it after a valid record
// both ways a store encodes records (ChainJSON; Chain then json.Marshal),
// reads it back through JSON and checks that the two-record log verifies
// and no field exceeds MaxField.
func FuzzChainRoundTrip(f *testing.F) {
	f.Add("alice", "198.18.0.1", "initiate", "/subscriptions/s/vm", "succeeded", "request r1", "k", "v")
	f.Add("\xff", "\xfe\xfe", "POST /drawbridge/v1/grants/\xff/revoke", "/drawbridge/v1/grants/\xff/revoke", "denied", "401 \xc3\x28", "\xed\xa0\x80", "\x00")
	f.Add(strings.Repeat("é", 300), "<>&", "\u2028\u2029", strings.Repeat("x", 600)+"\xff", "\"\\", "\x1b[2K", "", "\ufffd")
	f.Fuzz(func(t *testing.T, principal, source, op, target, result, detail, k, v string) {
		first := Chain(Record{}, Record{Time: t0, Principal: "p", Operation: "x", Result: Succeeded})
		rec, err := NewSucceeded(t0, principal, source, op, target, detail, map[string]string{k: v}, []string{v, k})
		if err != nil {
			t.Fatal(err)
		}
		rec.Result = result
		viaJSON, body, err := ChainJSON(first, rec)
		if err != nil {
			t.Fatalf("ChainJSON: %v", err)
		}
		viaChain := Chain(first, rec)
		if viaChain.Hash != viaJSON.Hash {
			t.Fatalf("Chain and ChainJSON disagree: %s vs %s", viaChain.Hash, viaJSON.Hash)
		}
		marshalled, err := json.Marshal(viaChain)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range [][]byte{body, marshalled} {
			var back Record
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("stored record does not decode: %v", err)
			}
			if err := Verify([]Record{first, back}); err != nil {
				t.Fatalf("read back, the log does not verify: %v\n%s", err, b)
			}
			for _, s := range []string{back.Principal, back.SourceAddress, back.Operation, back.Target, back.Result, back.Detail} {
				if len(s) > MaxField || !utf8.ValidString(s) {
					t.Fatalf("field %.40q… (%d bytes) is not valid, bounded UTF-8", s, len(s))
				}
			}
		}
	})
}

func TestClean(t *testing.T) {
	long := strings.Repeat("é", 400) // 800 bytes
	for _, c := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a\xffb", "a\ufffdb"},
		{"\xff\xfe", "\ufffd"},
		{strings.Repeat("x", MaxField), strings.Repeat("x", MaxField)},
	} {
		if got := Clean(c.in); got != c.want {
			t.Errorf("Clean(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	got := Clean(long)
	if len(got) > MaxField || !utf8.ValidString(got) || !strings.HasSuffix(got, "…[800 bytes]") || !strings.HasPrefix(long, strings.TrimSuffix(got, "…[800 bytes]")) {
		t.Errorf("Clean(800 bytes of é) = %q (%d bytes): want a valid prefix of at most %d bytes marked with the length", got, len(got), MaxField)
	}
	if Clean(got) != got {
		t.Error("Clean is not idempotent")
	}
}
