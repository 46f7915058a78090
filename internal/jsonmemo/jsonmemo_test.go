package jsonmemo

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"

	"github.com/drawbridge/drawbridge/internal/netrule"
)

// A value handed out by the memo is the caller's to change: changing it
// (its slices, nested values) must not change what the next caller gets.
func TestDecodeMemoHandsOutIndependentCopies(t *testing.T) {
	memo := New()
	nsg := netrule.NSG{ID: "nsg-1", Name: "nsg", SecurityRules: []netrule.SecurityRule{
		{Name: "ssh", Priority: 300, Direction: netrule.Inbound, Access: netrule.Allow, Protocol: netrule.Tcp,
			SourceAddressPrefixes: []string{"198.18.0.0/24"}, DestinationPortRange: "22"}}}
	raw, err := json.Marshal(nsg)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 { // a miss, then hits
		var got netrule.NSG
		pristine, err := Decode(memo, raw, &got)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, nsg) || !reflect.DeepEqual(*pristine, nsg) {
			t.Fatalf("round %d: decoded %+v, pristine %+v, want %+v", round, got, *pristine, nsg)
		}
		got.SecurityRules[0].SourceAddressPrefixes[0] = "0.0.0.0/0"
		got.SecurityRules[0].Priority = 100
		got.SecurityRules = append(got.SecurityRules, netrule.SecurityRule{Name: "extra"})
		if !reflect.DeepEqual(*pristine, nsg) {
			t.Fatalf("round %d: changing the decoded value changed the memo's: %+v", round, *pristine)
		}
	}
	if memo.n != 1 {
		t.Fatalf("memo holds %d entries, want 1", memo.n)
	}
	// Other bytes are another entry, and never the old value.
	nsg.SecurityRules[0].Priority = 310
	raw2, _ := json.Marshal(nsg)
	var got netrule.NSG
	if _, err := Decode(memo, raw2, &got); err != nil || got.SecurityRules[0].Priority != 310 {
		t.Fatalf("changed bytes decoded to %+v, %v", got, err)
	}
	// Malformed bytes are an error, as from json.Unmarshal, and not remembered.
	if _, err := Decode(memo, []byte(`{"id":`), &got); err == nil {
		t.Fatal("malformed JSON decoded without error")
	}
	if memo.n != 2 {
		t.Fatalf("memo holds %d entries, want 2", memo.n)
	}
}

func TestDeepCopySharesNothingMutable(t *testing.T) {
	type inner struct {
		Addrs []netip.Addr
		Tags  map[string][]string
	}
	type outer struct {
		Name  string
		In    *inner
		List  []inner
		Any   any
		Fixed [2][]int
	}
	src := outer{Name: "a", In: &inner{Addrs: []netip.Addr{netip.MustParseAddr("198.18.0.1")}, Tags: map[string][]string{"k": {"v"}}},
		List: []inner{{Tags: map[string][]string{"x": {"y"}}}}, Any: []string{"s"}, Fixed: [2][]int{{1}, {2}}}
	var dst outer
	New().deepCopyInto(reflect.ValueOf(&dst).Elem(), reflect.ValueOf(src))
	if !reflect.DeepEqual(dst, src) {
		t.Fatalf("copy %+v differs from %+v", dst, src)
	}
	dst.In.Addrs[0] = netip.MustParseAddr("198.18.0.2")
	dst.In.Tags["k"][0] = "changed"
	dst.List[0].Tags["x"] = nil
	dst.Any.([]string)[0] = "changed"
	dst.Fixed[0][0] = 9
	if src.In.Addrs[0] != netip.MustParseAddr("198.18.0.1") || src.In.Tags["k"][0] != "v" || src.List[0].Tags["x"] == nil ||
		src.Any.([]string)[0] != "s" || src.Fixed[0][0] != 1 {
		t.Fatalf("changing the copy changed the source: %+v", src)
	}
}

// DecodeInto decodes like json.Unmarshal into a new value, from the memo
// or not, and refuses what json.Unmarshal refuses.
func TestDecodeInto(t *testing.T) {
	type vm struct {
		ID    string       `json:"id"`
		NICs  []string     `json:"nics,omitempty"`
		Addrs []netip.Addr `json:"addresses,omitempty"`
	}
	raw := []byte(`{"id":"vm1","nics":["n1","n2"],"addresses":["198.18.0.1","2001:2::1"]}`)
	var want vm
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	memo := New()
	for round := range 3 {
		var got vm
		if err := memo.DecodeInto(raw, &got); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: %+v, %v; want %+v", round, got, err, want)
		}
		got.NICs[0] = "changed"
	}
	var v vm
	if err := memo.DecodeInto(raw, v); err == nil {
		t.Error("decoding into a non-pointer succeeded")
	}
	if err := memo.DecodeInto([]byte(`{"id":1}`), &v); err == nil {
		t.Error("decoding a number into a string field succeeded")
	}
}

// Decode into a value that already holds data gives what json.Unmarshal
// gives into a new value, and remembers only that: a field the bytes do
// not set is not carried from the caller's value to the next reader.
func TestDecodeIntoAFilledValue(t *testing.T) {
	memo := New()
	raw := []byte(`{"id":"nsg-1","name":"nsg","securityRules":null}`)
	filled := netrule.NSG{Location: "stale"}
	if _, err := Decode(memo, raw, &filled); err != nil || filled.Location != "" {
		t.Fatalf("decoded into a filled value: %+v, %v; want no location", filled, err)
	}
	var next netrule.NSG
	if _, err := Decode(memo, raw, &next); err != nil || next.Location != "" {
		t.Fatalf("next reader got %+v, %v; want no location", next, err)
	}
}

// Remember keeps a copy: changing the value after remembering it (as the
// simulated network's session could) does not change what the next
// reader of the bytes gets.
func TestRememberKeepsACopy(t *testing.T) {
	memo := New()
	nsg := netrule.NSG{ID: "nsg-1", Name: "nsg", SecurityRules: []netrule.SecurityRule{{Name: "r", Priority: 100}}}
	body, err := json.Marshal(&nsg)
	if err != nil {
		t.Fatal(err)
	}
	memo.Remember(body, &nsg)
	nsg.SecurityRules[0].Priority = 999
	nsg.Name = "changed"
	var got netrule.NSG
	if _, err := Decode(memo, body, &got); err != nil || got.Name != "nsg" || got.SecurityRules[0].Priority != 100 {
		t.Fatalf("after changing the remembered value, the memo gave %+v, %v", got, err)
	}
}

// A nil memo (a store opened without one) decodes with encoding/json
// alone, gives no pristine copy, and remembers nothing.
func TestNilMemoDecodesPlainly(t *testing.T) {
	var memo *Memo
	raw := []byte(`{"id":"nsg-1","name":"nsg"}`)
	var got netrule.NSG
	pristine, err := Decode(memo, raw, &got)
	if err != nil || pristine != nil || got.ID != "nsg-1" || got.Name != "nsg" {
		t.Fatalf("Decode = %+v, pristine %v, %v", got, pristine, err)
	}
	memo.Remember(raw, &got)
	var again netrule.NSG
	if err := memo.DecodeInto(raw, &again); err != nil || again.ID != "nsg-1" {
		t.Fatalf("DecodeInto = %+v, %v", again, err)
	}
	if err := memo.DecodeInto([]byte(`{`), &again); err == nil {
		t.Fatal("DecodeInto of bad JSON: no error")
	}
}
