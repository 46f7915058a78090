package netrule

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
)

// AppendJSON is json.Marshal, byte for byte, over random NSGs whose
// strings include every character json.Marshal escapes and whose optional
// fields are in turn empty, nil and set; every field is set in some NSG.
func TestNSGAppendJSONMatchesMarshal(t *testing.T) {
	// A field added to NSG or SecurityRule must be added to AppendJSON
	// (and to the generator below) too.
	if n, r := reflect.TypeFor[NSG]().NumField(), reflect.TypeFor[SecurityRule]().NumField(); n != 4 || r != 14 {
		t.Fatalf("NSG has %d fields and SecurityRule %d; AppendJSON encodes 4 and 14", n, r)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"", "a", "Tcp", "10.0.0.0/8", "*", "22-23", `"`, `\`, "<", ">", "&", "\n", "\t", "\x01", "\x7f", "é", "\u2028", "\u2029", "\xff", "drawbridge-jit-allow-0f3c"}
	str := func() string {
		s := ""
		for range rng.IntN(4) {
			s += pieces[rng.IntN(len(pieces))]
		}
		return s
	}
	strs := func() []string {
		switch rng.IntN(3) {
		case 0:
			return nil
		case 1:
			return []string{}
		}
		out := make([]string, 1+rng.IntN(3))
		for i := range out {
			out[i] = str()
		}
		return out
	}
	seen := make([]bool, reflect.TypeFor[SecurityRule]().NumField())
	for i := range 20000 {
		n := &NSG{ID: str(), Name: str(), Location: str()}
		switch rng.IntN(4) {
		case 0: // nil
		case 1:
			n.SecurityRules = []SecurityRule{}
		default:
			for range 1 + rng.IntN(4) {
				r := SecurityRule{
					Name: str(), Description: str(), Priority: rng.IntN(70000) - 100,
					Direction: Direction(str()), Access: Access(str()), Protocol: Protocol(str()),
					SourceAddressPrefix: str(), SourceAddressPrefixes: strs(),
					SourcePortRange: str(), SourcePortRanges: strs(),
					DestinationAddressPrefix: str(), DestinationAddressPrefixes: strs(),
					DestinationPortRange: str(), DestinationPortRanges: strs(),
				}
				v := reflect.ValueOf(r)
				for f := range seen {
					seen[f] = seen[f] || !v.Field(f).IsZero()
				}
				n.SecurityRules = append(n.SecurityRules, r)
			}
		}
		want, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.AppendJSON([]byte("x")); string(got) != "x"+string(want) {
			t.Fatalf("NSG %d:\nAppendJSON   %s\njson.Marshal %s", i, got[1:], want)
		}
	}
	for f, ok := range seen {
		if !ok {
			t.Errorf("field %s was never set", reflect.TypeFor[SecurityRule]().Field(f).Name)
		}
	}
	if got := (*NSG)(nil).AppendJSON(nil); string(got) != "null" {
		t.Errorf("nil NSG: %s", got)
	}
}
