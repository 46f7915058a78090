package agenthub

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// TestStateOfIsSnapshotState: stateOf gives what the agent gets from the
// snapshot (SnapshotOf(d).State()), state and error, for good and bad
// desired states.
func TestStateOfIsSnapshotState(t *testing.T) {
	v6, _ := jit.ParseSource("2001:2::/64")
	mapped := jit.SourceFromAddr(netip.MustParseAddr("::ffff:198.18.0.9"))
	cases := map[string]func(d *jit.Desired){
		"good":            func(*jit.Desired) {},
		"any source":      func(d *jit.Desired) { d.Grants[1].Source = jit.AnySource },
		"v6 prefix":       func(d *jit.Desired) { d.Grants[0].Source = v6 },
		"udp and any":     func(d *jit.Desired) { d.Grants[0].Protocol, d.Grants[1].Protocol = netrule.Udp, netrule.Any },
		"lower-case tcp":  func(d *jit.Desired) { d.Grants[0].Protocol = "tcp" },
		"icmp":            func(d *jit.Desired) { d.Grants[1].Protocol = netrule.Icmp },
		"bad protocol":    func(d *jit.Desired) { d.Grants[1].Protocol = "sctp" },
		"bad guarded":     func(d *jit.Desired) { d.Guarded[0].Protocol = "sctp" },
		"port 0":          func(d *jit.Desired) { d.Grants[0].Port = 0 },
		"guarded 70000":   func(d *jit.Desired) { d.Guarded[0].Port = 70000 },
		"mapped source":   func(d *jit.Desired) { d.Grants[1].Source = mapped },
		"local end time":  func(d *jit.Desired) { d.Grants[0].End = d.Grants[0].End.In(time.FixedZone("x", 3600)) },
		"no grants":       func(d *jit.Desired) { d.Grants = nil },
		"nothing guarded": func(d *jit.Desired) { d.Guarded = nil },
	}
	for name, edit := range cases {
		d := desired("g1", "g2", "g3")
		edit(&d)
		want, wantErr := SnapshotOf(d).State()
		got, err := stateOf(d)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Errorf("%s: error %v, want %v", name, err, wantErr)
			continue
		}
		if wantErr == nil && (!reflect.DeepEqual(normal(got.Guarded), normal(want.Guarded)) || !reflect.DeepEqual(normal(got.Grants), normal(want.Grants))) {
			t.Errorf("%s: state\n%+v\nwant\n%+v", name, got, want)
		}
	}
}

// normal makes an empty list nil (State leaves an empty one nil).
func normal[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// BenchmarkCheck: Check of a host with 10,000 grants (each request on a
// host checks all its active grants), against the text round trip it
// replaced (SnapshotOf(d).State()).
//
//	go test -run '^$' -bench Check ./internal/provider/agenthub/
func BenchmarkCheck(b *testing.B) {
	d := jit.Desired{VMID: host.ID, Guarded: []jit.GuardedPort{{Port: 22, Protocol: netrule.Tcp}}}
	for i := range 10000 {
		d.Grants = append(d.Grants, jit.DesiredGrant{GrantID: fmt.Sprintf("g%d", i), Port: 22, Protocol: netrule.Tcp,
			Source: jit.SourceFromAddr(netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})), End: time.Now().Add(time.Hour)})
	}
	b.Run("stateOf", func(b *testing.B) {
		for b.Loop() {
			if _, err := stateOf(d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SnapshotOf.State", func(b *testing.B) {
		for b.Loop() {
			if _, err := SnapshotOf(d).State(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
