package nftables

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/clock"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestValidateRejects(t *testing.T) {
	end := t0.Add(time.Hour)
	bad := []State{
		{Guarded: []GuardedPort{{0, netrule.Tcp}}},
		{Guarded: []GuardedPort{{65536, netrule.Tcp}}},
		{Guarded: []GuardedPort{{22, netrule.Icmp}}},
		{Grants: []Grant{{ID: "g", Port: 0, Protocol: netrule.Tcp, Source: pfx("198.18.0.1/32"), End: end}}},
		{Grants: []Grant{{ID: "g", Port: 22, Protocol: "", Source: pfx("198.18.0.1/32"), End: end}}},
		{Grants: []Grant{{ID: "g", Port: 22, Protocol: netrule.Tcp, End: end}}},
		{Grants: []Grant{{ID: "g", Port: 22, Protocol: netrule.Tcp, Source: pfx("::ffff:198.18.0.1/128"), End: end}}},
		{Grants: []Grant{{ID: "g", Port: 22, Protocol: netrule.Tcp, Source: pfx("198.18.0.1/32")}}},
	}
	for i, st := range bad {
		if err := st.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d: Validate = %v, want ErrInvalid", i, err)
		}
		// The fake (like the kernel implementation) rejects before acting.
		f := NewFake(clock.NewFake(t0))
		if err := f.Apply(context.Background(), st); !errors.Is(err, ErrInvalid) || f.Enabled() {
			t.Errorf("case %d: fake Apply = %v, enabled %v", i, err, f.Enabled())
		}
	}
}

func TestDisjointNested(t *testing.T) {
	g := func(src string, d time.Duration) Grant {
		return Grant{Port: 22, Protocol: netrule.Tcp, Source: pfx(src), End: t0.Add(d)}
	}
	st := State{Grants: []Grant{
		g("198.18.1.0/24", time.Minute),
		g("198.18.1.7/32", 2*time.Minute),  // inside, later: split
		g("198.18.1.9/32", 30*time.Second), // inside, earlier: absorbed
		g("198.18.1.0/24", 10*time.Second), // duplicate, earlier: max wins
		g("198.18.2.0/24", time.Minute),    // adjacent, same end: merged
	}}
	p := buildPlan(st, t0)
	got := union(p, false, 6)
	a := netip.MustParseAddr
	want := []elem{
		{22, a("198.18.1.0"), a("198.18.1.6"), t0.Add(time.Minute)},
		{22, a("198.18.1.7"), a("198.18.1.7"), t0.Add(2 * time.Minute)},
		{22, a("198.18.1.8"), a("198.18.2.255"), t0.Add(time.Minute)},
	}
	if !slices.EqualFunc(got, want, func(x, y elem) bool { return x.key() == y.key() && x.end.Equal(y.end) }) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	// Reading back and planning again yields the same elements.
	again := union(buildPlan(stateOf(p), t0), false, 6)
	if !slices.EqualFunc(got, again, func(x, y elem) bool { return x.key() == y.key() && x.end.Equal(y.end) }) {
		t.Fatalf("round trip: %v != %v", again, got)
	}
	// Enforced: every grant is covered.
	for i := range st.Grants {
		st.Grants[i].ID = string(rune('a' + i))
	}
	if ids := Enforced(st.Grants, stateOf(p), t0, 0); len(ids) != len(st.Grants) {
		t.Fatalf("Enforced = %v", ids)
	}
	// A grant outside, or lasting longer than what is observed, is not.
	extra := []Grant{
		{ID: "x", Port: 22, Protocol: netrule.Tcp, Source: pfx("198.18.3.0/32"), End: t0.Add(time.Minute)},
		{ID: "y", Port: 22, Protocol: netrule.Tcp, Source: pfx("198.18.1.0/24"), End: t0.Add(time.Hour)},
		{ID: "z", Port: 22, Protocol: netrule.Any, Source: pfx("198.18.1.0/24"), End: t0.Add(time.Minute)},
	}
	if ids := Enforced(extra, stateOf(p), t0, time.Second); len(ids) != 0 {
		t.Fatalf("Enforced(extra) = %v", ids)
	}
}

func TestRangePrefixes(t *testing.T) {
	a := netip.MustParseAddr
	cases := []struct {
		first, last string
		want        []string
	}{
		{"198.18.1.0", "198.18.1.255", []string{"198.18.1.0/24"}},
		{"198.18.1.8", "198.18.2.255", []string{"198.18.1.8/29", "198.18.1.16/28", "198.18.1.32/27", "198.18.1.64/26", "198.18.1.128/25", "198.18.2.0/24"}},
		{"0.0.0.0", "255.255.255.255", []string{"0.0.0.0/0"}},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", []string{"::/0"}},
		{"2001:2::1", "2001:2::1", []string{"2001:2::1/128"}},
	}
	for _, c := range cases {
		var got []string
		for _, p := range rangePrefixes(a(c.first), a(c.last)) {
			got = append(got, p.String())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s-%s: %v, want %v", c.first, c.last, got, c.want)
		}
	}
}

func TestFakeExpiryAndRevoke(t *testing.T) {
	clk := clock.NewFake(t0)
	f := NewFake(clk)
	ctx := context.Background()
	st := State{
		Guarded: []GuardedPort{{22, netrule.Any}},
		Grants: []Grant{
			{ID: "a", Port: 22, Protocol: netrule.Tcp, Source: pfx("198.18.1.1/32"), End: t0.Add(time.Minute)},
			{ID: "old", Port: 22, Protocol: netrule.Tcp, Source: pfx("198.18.1.2/32"), End: t0},
		},
	}
	if err := f.Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := f.Apply(ctx, st); err != nil || f.Changes != 1 {
		t.Fatalf("second Apply: %v, changes %d (want 1)", err, f.Changes)
	}
	obs, _ := f.Observe(ctx)
	if ids := Enforced(st.Grants, obs, t0, 0); !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("Enforced = %v, want [a]", ids)
	}
	if len(obs.Guarded) != 2 {
		t.Fatalf("Guarded = %v, want tcp and udp 22", obs.Guarded)
	}
	clk.Advance(time.Minute)
	obs, _ = f.Observe(ctx)
	if len(obs.Grants) != 0 {
		t.Fatalf("after end: %v", obs.Grants)
	}
	f.Err = ErrInjected
	if err := f.Apply(ctx, st); !errors.Is(err, ErrInjected) {
		t.Fatalf("Err not returned: %v", err)
	}
	f.Err = nil
	if err := f.Disable(ctx); err != nil || f.Enabled() {
		t.Fatal("Disable")
	}
}
