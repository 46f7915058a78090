package agent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/nftables"
)

func grant(id, src string, end time.Time) nftables.Grant {
	return nftables.Grant{ID: id, Port: 22, Protocol: netrule.Tcp, Source: netip.MustParsePrefix(src), End: end}
}

func TestUnionAddsFirst(t *testing.T) {
	now := time.Now()
	end := now.Add(time.Hour)
	guard := []nftables.GuardedPort{{Port: 22, Protocol: netrule.Tcp}}
	last := nftables.State{Guarded: guard, Grants: []nftables.Grant{grant("old", "198.18.1.2/32", end), grant("gone", "198.18.1.3/32", now)}}

	// A new grant replacing an old one: the union holds both (not the one
	// that has ended), and a second pass is needed.
	st := nftables.State{Guarded: guard, Grants: []nftables.Grant{grant("new", "198.18.1.4/32", end)}}
	u, two := union(&last, st, now)
	if !two || len(u.Grants) != 2 || u.Grants[0].ID != "new" || u.Grants[1].ID != "old" {
		t.Fatalf("union = %+v, two passes %v; want new+old and two passes", u.Grants, two)
	}
	// Only removals (revoke): applied directly.
	if _, two := union(&last, nftables.State{Guarded: guard}, now); two {
		t.Fatal("a snapshot that only removes access must not take two passes")
	}
	// Only additions: one pass.
	st2 := nftables.State{Guarded: guard, Grants: append(last.Grants[:1:1], grant("new", "198.18.1.4/32", end))}
	if _, two := union(&last, st2, now); two {
		t.Fatal("a snapshot that only adds must take one pass")
	}
	// No previous state: one pass.
	if _, two := union(nil, st, now); two {
		t.Fatal("first snapshot must take one pass")
	}
	// Unguarding a port is kept in the first pass (the guard stays until the second).
	u, two = union(&last, nftables.State{Grants: st.Grants}, now)
	if !two || len(u.Guarded) != 1 {
		t.Fatalf("unguard with an addition: guarded %v, two passes %v", u.Guarded, two)
	}
}
