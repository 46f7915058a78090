package audit

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// ChainJSON must chain exactly as Chain does, and its bytes must be
// json.Marshal's, error for error, on every record: plain ones (its own
// path) and every kind of string and Before/After it leaves to json.Marshal.
func TestChainJSONEncodesAsMarshal(t *testing.T) {
	strs := []string{"", "admin", "198.18.0.1", "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
		"with space", `quote"d`, `back\slash`, "<script>&", "tab\there", "line\nbreak", "ünïcödé", "\u2028sep\u2029", "bad utf8 \xff\xfe", "\x00ctl"}
	raws := []json.RawMessage{nil, json.RawMessage(`null`), json.RawMessage(`{}`), json.RawMessage(`{"b":[true,null,"x y"],"a":1.50}`),
		json.RawMessage(`{"a": 1}`), json.RawMessage(`{"s":"<b>"}`), json.RawMessage(`{"s":"\u2028"}`), json.RawMessage("{\"s\":\"\u2028\"}"),
		json.RawMessage(`{"s":"esc \" \\ ok","k":"\u00e9"}`), json.RawMessage(`[1,2`), json.RawMessage(`not json`), json.RawMessage(`"str"`),
		json.RawMessage(` 1`), json.RawMessage(`{"a":1,"a":2}`), json.RawMessage("{\"s\":\"bad \xff\"}")}
	times := []time.Time{time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC), time.Date(2026, 11, 25, 13, 0, 0, 0, time.FixedZone("X", 3600)),
		{}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() string { return strs[rng.IntN(len(strs))] }
	for i := range 20000 {
		prev := Record{Seq: rng.Int64N(1 << 40), Hash: pick()}
		r := Record{Time: times[rng.IntN(len(times))], Principal: pick(), SourceAddress: pick(), Operation: pick(),
			Target: pick(), Result: pick(), Detail: pick(), Before: raws[rng.IntN(len(raws))], After: raws[rng.IntN(len(raws))]}
		if i%3 == 0 { // mostly plain, as stored records are
			r.Principal, r.SourceAddress, r.Operation, r.Target, r.Result, r.Detail, prev.Hash = "admin", "127.0.0.1", "initiate", strs[3], Succeeded, "", "ab"
		}
		chained := Chain(prev, r)
		want, wantErr := json.Marshal(chained)
		got, body, gotErr := ChainJSON(prev, r)
		if string(mustJSON(got)) != string(mustJSON(chained)) && wantErr == nil {
			t.Fatalf("ChainJSON chained %+v, Chain %+v", got, chained)
		}
		if (wantErr == nil) != (gotErr == nil) || string(body) != string(want) {
			t.Fatalf("record %+v:\nChainJSON %s, %v\njson.Marshal %s, %v", chained, body, gotErr, want, wantErr)
		}
	}
}

func mustJSON(r Record) []byte {
	b, _ := json.Marshal(r)
	return b
}

func BenchmarkChainJSON(b *testing.B) {
	r := benchRecord()
	prev := Record{Seq: 41, Hash: "00"}
	b.Run("ChainJSON", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := ChainJSON(prev, r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Chain+json.Marshal", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(Chain(prev, r)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// fakeState encodes as {"b":…,"a":…} through json.Marshal and writes its
// canonical form itself, unless decline.
type fakeState struct {
	B       int  `json:"b"`
	A       int  `json:"a"`
	decline bool `json:"-"`
}

func (f fakeState) AppendCanonicalJSON(dst []byte) ([]byte, bool) {
	if f.decline {
		return append(dst, "garbage"...), false
	}
	return append(dst, fmt.Sprintf(`{"a":%d,"b":%d}`, f.A, f.B)...), true
}

// A state's own canonical encoding chains exactly as json.Marshal's
// canonicalised, and one that declines falls back to json.Marshal.
func TestCanonicalEncoderChainsAsMarshal(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	prev := Record{Seq: 9, Hash: "h"}
	for _, st := range []fakeState{{B: 2, A: 1}, {B: 2, A: 1, decline: true}} {
		own, err := NewSucceeded(at, "admin", "", "op", "t", "", nil, st)
		if err != nil {
			t.Fatal(err)
		}
		marshalled, _ := json.Marshal(st)
		plain := Record{Time: at, Principal: "admin", Operation: "op", Target: "t", Result: Succeeded, After: marshalled}
		got, want := Chain(prev, own), Chain(prev, plain)
		if got.Hash != want.Hash || string(got.After) != `{"a":1,"b":2}` || string(got.After) != string(want.After) {
			t.Fatalf("decline=%v: chained %s %s, want %s %s", st.decline, got.After, got.Hash, want.After, want.Hash)
		}
		if err := VerifyFrom(prev, []Record{got}); err != nil {
			t.Fatalf("decline=%v: %v", st.decline, err)
		}
	}
}
