package jit

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
)

// canonicalOf is what the audit log makes of v without a CanonicalEncoder:
// json.Marshal's encoding, canonicalised by audit.Chain.
func canonicalOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(audit.Chain(audit.Record{}, audit.Record{Time: time.Unix(0, 0), After: b}).After)
}

// Grant's and Request's own canonical encodings must be, byte for byte,
// what canonicalising json.Marshal's gives: over random values with every
// field set (so a field added to the types and not to the encoders fails
// here), odd strings, zero and non-UTC times. Where they decline (ok
// false), the audit log falls back to json.Marshal, so only ok results
// are compared, and plain values must be ok.
func TestCanonicalEncodingsMatchMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	strs := []string{"", "x", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1", "with space",
		`q"uote`, "<&>", "tab\t", "ünï", "\u2028", "bad \xff", "TCP", "*"}
	times := []time.Time{{}, time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC), time.Date(2026, 11, 25, 13, 0, 0, 0, time.FixedZone("X", 3600)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	var sources []Source
	for _, s := range []string{"*", "198.18.0.1", "198.18.0.0/15", "2001:2::/48"} {
		src, err := ParseSource(s)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, src)
	}
	sources = append(sources, Source{})
	connects := []netip.AddrPort{{}, netip.MustParseAddrPort("198.18.0.20:50000"), netip.MustParseAddrPort("[2001:2::7]:22")}
	pick := func() string { return strs[rng.IntN(len(strs))] }
	tm := func() time.Time { return times[rng.IntN(len(times))] }
	grant := func(plain bool) Grant {
		g := Grant{ID: pick(), RequestID: pick(), PolicyID: pick(), VMID: pick(), Port: rng.IntN(70000) - 10, Protocol: pick(),
			Source: sources[rng.IntN(len(sources))], StartTime: tm(), EndTime: tm(), Status: Status(pick()), StatusReason: Reason(pick()),
			EndedAt: tm(), Applied: rng.IntN(2) == 0, AppliedAt: tm(), ProviderError: pick(), ConnectTo: connects[rng.IntN(len(connects))]}
		if plain {
			g.ID, g.RequestID, g.PolicyID, g.VMID, g.Protocol, g.Status, g.StatusReason, g.ProviderError = "g1", "r1", strs[2], strs[2], "TCP", StatusInitiated, ReasonUserRequested, ""
			g.StartTime, g.EndTime, g.EndedAt, g.AppliedAt = times[1], times[2], time.Time{}, times[1]
		}
		return g
	}
	full := map[string]int{} // values of each type with every field set
	everyFieldSet := func(v any) {
		rv := reflect.ValueOf(v)
		for i := range rv.NumField() {
			if rv.Field(i).IsZero() {
				return
			}
		}
		full[rv.Type().Name()]++
	}
	check := func(v audit.CanonicalEncoder, plain bool) {
		if got, ok := v.AppendCanonicalJSON(nil); ok {
			if want := canonicalOf(t, v); string(got) != want {
				t.Fatalf("%T %+v:\nown       %s\ncanonical %s", v, v, got, want)
			}
		} else if plain {
			t.Fatalf("plain %T %+v declined", v, v)
		}
	}
	for i := range 20000 {
		plain := i%4 == 0
		g := grant(plain)
		everyFieldSet(g)
		check(g, plain)
		r := Request{ID: pick(), PolicyID: pick(), Requestor: pick(), SourceAddress: pick(), Justification: pick(), StartTime: tm()}
		if plain {
			r.ID, r.PolicyID, r.Requestor, r.SourceAddress, r.Justification, r.StartTime = "r1", strs[2], "admin", "127.0.0.1", "", times[1]
		}
		switch rng.IntN(3) {
		case 0: // nil grants
		case 1:
			r.Grants = []Grant{}
		default:
			for range 1 + rng.IntN(3) {
				r.Grants = append(r.Grants, grant(plain))
			}
		}
		everyFieldSet(r)
		check(r, plain)
	}
	if full["Grant"] == 0 || full["Request"] == 0 {
		t.Fatalf("values with every field set: %v; a field is missing from the generator", full)
	}
}
