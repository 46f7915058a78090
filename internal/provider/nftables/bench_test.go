package nftables

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/netns"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// Run as root:
//
//	go test ./internal/provider/nftables/ -run '^$' -bench . -benchtime 5x
//
// (BenchmarkConnect wants more iterations: -bench Connect -benchtime 3000x.)

// manyGrants returns n grants on port 22 from distinct single IPv4
// addresses 198.18.16.0, 198.18.16.1, ... (inside 198.18.0.0/15, clear of
// the test bed's clients), each ending a millisecond after the previous one
// so that no two adjacent elements merge: n kernel elements.
func manyGrants(n int, now time.Time) []Grant {
	gs := make([]Grant, n)
	base := netip.MustParseAddr("198.18.16.0").As4()
	v := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	for i := range gs {
		a := v + uint32(i)
		addr := netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
		gs[i] = Grant{Port: 22, Protocol: netrule.Tcp, Source: netip.PrefixFrom(addr, 32),
			End: now.Add(time.Hour + time.Duration(i)*time.Millisecond)}
	}
	return gs
}

// BenchmarkApply100k: one Apply that creates the table and adds 100k grant
// elements (timed), from a table-less namespace each time.
func BenchmarkApply100k(b *testing.B) {
	requireKernel(b)
	vm, err := netns.New("db-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer vm.Close()
	fd, err := vm.Open()
	if err != nil {
		b.Fatal(err)
	}
	defer fd.Close()
	fw := NewKernel(Options{NetNS: int(fd.Fd())})
	defer fw.Close()
	ctx := context.Background()
	st := State{Guarded: []GuardedPort{{22, netrule.Tcp}}, Grants: manyGrants(100_000, time.Now())}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := fw.Disable(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := fw.Apply(ctx, st); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	obs, err := fw.Observe(ctx)
	if err != nil || len(obs.Grants) != 100_000 {
		b.Fatalf("Observe: %d grants, %v", len(obs.Grants), err)
	}
}

// BenchmarkReconcile100k: an Apply that adds one grant to a table already
// holding 100k (what an agent's reconcile costs at that scale: it reads all
// elements back and diffs).
func BenchmarkReconcile100k(b *testing.B) {
	requireKernel(b)
	vm, err := netns.New("db-bench")
	if err != nil {
		b.Fatal(err)
	}
	defer vm.Close()
	fd, err := vm.Open()
	if err != nil {
		b.Fatal(err)
	}
	defer fd.Close()
	fw := NewKernel(Options{NetNS: int(fd.Fd())})
	defer fw.Close()
	ctx := context.Background()
	now := time.Now()
	st := State{Guarded: []GuardedPort{{22, netrule.Tcp}}, Grants: manyGrants(100_000, now)}
	if err := fw.Apply(ctx, st); err != nil {
		b.Fatal(err)
	}
	extra := Grant{Port: 22, Protocol: netrule.Tcp, Source: addrA4, End: now.Add(2 * time.Hour)}
	with := State{Guarded: st.Guarded, Grants: append(st.Grants[:len(st.Grants):len(st.Grants)], extra)}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := with
		if i%2 == 1 {
			s = st // revoke it again
		}
		if err := fw.Apply(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConnect: TCP connect + close from client A to the guarded,
// granted port 22 in the vm namespace, with only A's grant and with A's
// grant among 100k others. Every connect is a new connection, so its SYN
// goes through the set lookup.
func BenchmarkConnect(b *testing.B) {
	for _, n := range []int{0, 100_000} {
		b.Run(map[int]string{0: "elements=0", 100_000: "elements=100k"}[n], func(b *testing.B) {
			tb := newTestbed(b)
			now := time.Now()
			gs := append(manyGrants(n, now), Grant{Port: 22, Protocol: netrule.Tcp, Source: addrA4, End: now.Add(2 * time.Hour)})
			if err := tb.fw.Apply(context.Background(), State{Guarded: guarded, Grants: gs}); err != nil {
				b.Fatal(err)
			}
			addr := net.JoinHostPort(vmForA4, "22")
			b.ResetTimer()
			err := tb.a.Do(func() error {
				d := net.Dialer{Timeout: time.Second}
				for i := 0; i < b.N; i++ {
					c, err := d.Dial("tcp", addr)
					if err != nil {
						return err
					}
					// RST on close: no TIME_WAIT, no port exhaustion.
					c.(*net.TCPConn).SetLinger(0)
					c.Close()
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}
