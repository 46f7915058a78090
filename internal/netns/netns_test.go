package netns

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"
)

func TestTwoHostsTalk(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("network namespaces unavailable: %v", err)
	}
	a, err := New("dbt-a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err := New("dbt-b")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := Veth(a, "eth0", b, "eth0"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		ns *NS
		p  string
	}{{a, "198.18.0.1/24"}, {b, "198.18.0.2/24"}, {a, "2001:2::1/64"}, {b, "2001:2::2/64"}} {
		if err := s.ns.AddAddr("eth0", netip.MustParsePrefix(s.p)); err != nil {
			t.Fatal(err)
		}
	}
	l, err := b.Listen("tcp", "[::]:8080")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	Echo(l)
	for _, addr := range []string{"198.18.0.2:8080", "[2001:2::2]:8080"} {
		c, err := a.Dial(context.Background(), "tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		if err := RoundTrip(c, "hello", 2*time.Second); err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		c.Close()
	}
	// The root namespace has no such listener: the socket really was in b.
	if _, err := os.Stat(b.Path()); err != nil {
		t.Fatal(err)
	}
	name := a.Name()
	a.Close()
	if _, err := os.Stat("/run/netns/" + name); !os.IsNotExist(err) {
		t.Fatalf("namespace %s still present after Close: %v", name, err)
	}
}
