package audit

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// log5 builds a valid five-record log.
func log5() []Record {
	var out []Record
	prev := Record{}
	ops := []string{"policy.put", "initiate", "initiate", "approve", "revoke"}
	for i, op := range ops {
		r := Chain(prev, Record{
			Time:          t0.Add(time.Duration(i) * time.Minute),
			Principal:     "alice",
			SourceAddress: "198.18.0.10",
			Operation:     op,
			Target:        "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1",
			Result:        Succeeded,
			Before:        json.RawMessage(`{"ports":[22]}`),
			After:         json.RawMessage(`{"ports":[22, 3389]}`),
		})
		out = append(out, r)
		prev = r
	}
	return out
}

func TestChainFields(t *testing.T) {
	first := Chain(Record{}, Record{Time: time.Date(2025, 3, 1, 13, 0, 0, 123456789, time.FixedZone("X", 3600)), Operation: "x", Before: json.RawMessage(` { "b":1, "a": [1, 2.50] } `)})
	if first.Seq != 1 || first.PrevHash != "" {
		t.Errorf("first record: seq %d prevHash %q, want 1 and empty", first.Seq, first.PrevHash)
	}
	if want := time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC); !first.Time.Equal(want) || first.Time.Location() != time.UTC {
		t.Errorf("time = %v, want %v in UTC", first.Time, want)
	}
	if string(first.Before) != `{"a":[1,2.50],"b":1}` {
		t.Errorf("before = %s, want canonical JSON", first.Before)
	}
	if len(first.Hash) != 64 {
		t.Errorf("hash %q is not hex SHA-256", first.Hash)
	}
	second := Chain(first, Record{Operation: "y"})
	if second.Seq != 2 || second.PrevHash != first.Hash {
		t.Errorf("second record: seq %d prevHash %q, want 2 and %q", second.Seq, second.PrevHash, first.Hash)
	}
}

// Moving text between adjacent fields must change the hash.
func TestHashSeparatesFields(t *testing.T) {
	a := Record{Seq: 1, Time: t0, Principal: "ab", SourceAddress: "c"}
	b := Record{Seq: 1, Time: t0, Principal: "a", SourceAddress: "bc"}
	if ComputeHash(a) == ComputeHash(b) {
		t.Error("field boundaries are not part of the hash")
	}
}

// Reformatted JSON and a timestamp read back in another zone still verify:
// what a SQL store returns is not tampering.
func TestVerifyToleratesStorageRoundTrip(t *testing.T) {
	recs := log5()
	recs[1].Before = json.RawMessage("{\n  \"ports\": [ 22 ]\n}")
	recs[1].Time = recs[1].Time.In(time.FixedZone("CET", 3600))
	if err := Verify(recs); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	cases := []struct {
		name    string
		tamper  func([]Record) []Record
		wantSeq int64
		reason  string
	}{
		{"intact", func(r []Record) []Record { return r }, 0, ""},
		{"edited principal", func(r []Record) []Record { r[2].Principal = "mallory"; return r }, 3, "edited"},
		{"edited result", func(r []Record) []Record { r[3].Result = Denied; return r }, 4, "edited"},
		{"edited after state", func(r []Record) []Record { r[0].After = json.RawMessage(`{"ports":[22,3389,5985]}`); return r }, 1, "edited"},
		{"edited time", func(r []Record) []Record { r[4].Time = r[4].Time.Add(time.Second); return r }, 5, "edited"},
		{"edited and rehashed", func(r []Record) []Record {
			r[2].Principal = "mallory"
			r[2].Hash = ComputeHash(r[2])
			return r
		}, 4, "prevHash does not match the hash of record 3"},
		{"deleted middle record", func(r []Record) []Record { return append(r[:2:2], r[3:]...) }, 3, "record 3 is missing"},
		{"deleted first record", func(r []Record) []Record { return r[1:] }, 1, "record 1 is missing"},
		{"deleted and renumbered", func(r []Record) []Record {
			r = append(r[:2:2], r[3:]...)
			for i := 2; i < len(r); i++ {
				r[i].Seq--
			}
			return r
		}, 3, "prevHash does not match the hash of record 2"},
		{"inserted record chained properly", func(r []Record) []Record {
			forged := Chain(r[1], Record{Time: t0, Principal: "mallory", Operation: "initiate", Result: Succeeded})
			return append(r[:2:2], append([]Record{forged}, r[2:]...)...)
		}, 4, "inserted"},
		{"reordered", func(r []Record) []Record { r[2], r[3] = r[3], r[2]; return r }, 3, "found seq 4 at position 3"},
		{"reordered with seqs swapped", func(r []Record) []Record {
			r[2], r[3] = r[3], r[2]
			r[2].Seq, r[3].Seq = 3, 4
			return r
		}, 3, "prevHash does not match the hash of record 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(c.tamper(log5()))
			if c.wantSeq == 0 {
				if err != nil {
					t.Fatalf("intact log: %v", err)
				}
				return
			}
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("want *VerifyError at seq %d, got %v", c.wantSeq, err)
			}
			if ve.Seq != c.wantSeq || !strings.Contains(err.Error(), c.reason) {
				t.Errorf("got %q (seq %d), want seq %d and %q", err, ve.Seq, c.wantSeq, c.reason)
			}
		})
	}
}

func TestVerifyFromAnchor(t *testing.T) {
	recs := log5()
	if err := VerifyFrom(recs[1], recs[2:]); err != nil {
		t.Fatalf("tail after a good anchor: %v", err)
	}
	// An anchor whose hash differs (history before the tail was rewritten).
	bad := recs[1]
	bad.Hash = strings.Repeat("0", 64)
	var ve *VerifyError
	if err := VerifyFrom(bad, recs[2:]); !errors.As(err, &ve) || ve.Seq != 3 {
		t.Errorf("rewritten history before the tail: got %v, want a break at seq 3", err)
	}
}

// `audit export` writes JSON lines; reading them back must still verify.
func TestVerifyAfterJSONRoundTrip(t *testing.T) {
	var back []Record
	for _, r := range log5() {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var got Record
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		back = append(back, got)
	}
	if err := Verify(back); err != nil {
		t.Fatal(err)
	}
	back[1].Detail = "nothing to see"
	var ve *VerifyError
	if err := Verify(back); !errors.As(err, &ve) || ve.Seq != 2 {
		t.Errorf("edited detail after export: got %v, want a break at seq 2", err)
	}
}

// NewSucceeded encodes before and after as JSON and leaves a nil one empty.
func TestNewSucceeded(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	r, err := NewSucceeded(at, "alice", "198.18.0.1", "role.create", "/", "role x", nil, map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Result != Succeeded || r.Before != nil || string(r.After) != `{"n":1}` || r.Principal != "alice" || r.SourceAddress != "198.18.0.1" || !r.Time.Equal(at) {
		t.Fatalf("record = %+v", r)
	}
	if _, err := NewSucceeded(at, "alice", "", "op", "/", "", func() {}, nil); err == nil {
		t.Fatal("an unencodable state gave no error")
	}
}
