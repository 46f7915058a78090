package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// StandardSpec is the suite's starting world: a web instance with two ENIs
// and a db instance sharing a group, user rules that cover the guarded port
// in every way (exactly, inside a range, all traffic, IPv6), and rules that
// do not.
func StandardSpec() Spec {
	return Spec{
		Groups: []Group{
			{ID: "sg-0web", Rules: []Rule{
				{Proto: "tcp", From: 443, To: 443, CIDR: "0.0.0.0/0", Desc: "https"},
				{Proto: "tcp", From: 22, To: 22, CIDR: "203.0.113.0/24", Desc: "office ssh"},
				{Proto: "tcp", From: 20, To: 30, CIDR: "10.0.0.0/8", Desc: "range"},
				{Proto: "tcp", From: 20, To: 30, CIDR: "2001:db8::/32", Desc: "range v6"},
				{Proto: "-1", From: -1, To: -1, CIDR: "192.0.2.0/24", Desc: "partner: all traffic"},
				{Proto: "udp", From: 22, To: 22, CIDR: "0.0.0.0/0"},
				{Proto: "47", From: -1, To: -1, CIDR: "198.18.0.0/24", Desc: "gre"},
			}},
			{ID: "sg-0shared", Rules: []Rule{
				{Proto: "tcp", From: 0, To: 65535, CIDR: "172.16.0.0/12", Desc: "corp"},
			}},
			{ID: "sg-0a"}, {ID: "sg-0b"}, {ID: "sg-0c"},
		},
		ENIs: []ENI{
			{ID: "eni-0web0", Groups: []string{"sg-0web", "sg-0shared"}},
			{ID: "eni-0web1", Groups: []string{"sg-0shared"}},
			{ID: "eni-0db0", Groups: []string{"sg-0shared"}},
			{ID: "eni-0full", Groups: []string{"sg-0web", "sg-0a", "sg-0b", "sg-0c", "sg-0shared"}},
		},
		VMs: []VM{{Name: "web", ENIs: []string{"eni-0web0", "eni-0web1"}}, {Name: "db", ENIs: []string{"eni-0db0"}}, {Name: "full", ENIs: []string{"eni-0full"}}},
	}
}

var ssh = []jit.GuardedPort{{Port: 22, Protocol: netrule.Tcp}}

func grant(id, cidr string) jit.DesiredGrant {
	src, err := jit.ParseSource(cidr)
	if err != nil {
		panic(err) // the suite's own constants
	}
	return jit.DesiredGrant{GrantID: id, Port: 22, Protocol: netrule.Tcp, Source: src, End: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func apply(t *testing.T, w World, vm string, guarded []jit.GuardedPort, grants ...jit.DesiredGrant) {
	t.Helper()
	v := w.VM(vm)
	if _, err := w.Provider().Apply(context.Background(), v, jit.Desired{VMID: v.ID, Guarded: guarded, Grants: grants}); err != nil {
		t.Fatalf("apply on %s: %v", vm, err)
	}
}

func same(t *testing.T, what string, want, got State) {
	t.Helper()
	if d := Diff(want, got); d != "" {
		t.Fatalf("%s: state differs:\n%s", what, d)
	}
}

// Run runs the suite on the worlds f builds.
func Run(t *testing.T, f Factory) {
	for _, faults := range []bool{false, true} {
		name := "clean"
		if faults {
			name = "faults"
		}
		t.Run("lifecycle/"+name, func(t *testing.T) { lifecycle(t, f, faults) })
	}
	t.Run("no-room", func(t *testing.T) { noRoom(t, f) })
	t.Run("drift", func(t *testing.T) { drift(t, f) })
}

func lifecycle(t *testing.T, f Factory, faults bool) {
	w := f(t, StandardSpec())
	w.Faults(faults)
	web, db := []string{"eni-0web0", "eni-0web1"}, []string{"eni-0db0"}
	before := w.State(t)

	apply(t, w, "web", ssh)
	enabled := w.State(t)
	for _, src := range []string{"203.0.113.5", "10.1.2.3", "2001:db8::1", "192.0.2.9", "172.16.1.1"} {
		if enabled.Allows(web, src, "tcp", 22) {
			t.Errorf("%s still allowed on tcp/22 after enable", src)
		}
	}
	if enabled.Allows(db, "172.16.1.1", "tcp", 22) {
		t.Error("the shared group still lets 172.16.1.1 in on tcp/22 (db)")
	}
	for _, c := range []struct {
		src, proto string
		port       int
	}{
		{"10.1.2.3", "tcp", 21}, {"10.1.2.3", "tcp", 23}, {"2001:db8::1", "tcp", 30}, {"0.0.0.0", "tcp", 443},
		{"198.51.100.1", "udp", 22}, {"192.0.2.9", "tcp", 8080}, {"192.0.2.9", "udp", 22}, {"192.0.2.9", "icmp", -1},
		{"192.0.2.9", "47", -1}, {"192.0.2.9", "50", -1}, {"172.16.1.1", "tcp", 23}, {"198.18.0.1", "47", -1},
	} {
		if !enabled.Allows(web, c.src, c.proto, c.port) {
			t.Errorf("%s on %s/%d: allowed before JIT, denied after enable", c.src, c.proto, c.port)
		}
	}
	apply(t, w, "web", ssh)
	same(t, "enable applied twice", enabled, w.State(t))

	g := grant("g-1", "198.51.100.7/32")
	apply(t, w, "web", ssh, g)
	granted := w.State(t)
	if !granted.Allows(web[:1], "198.51.100.7", "tcp", 22) || granted.Allows(web, "198.51.100.8", "tcp", 22) {
		t.Error("the grant opens tcp/22 for other than 198.51.100.7/32")
	}
	if n := len(granted.ENIs["eni-0web0"]); n != 3 {
		t.Errorf("primary ENI has %d groups after the grant, want 3", n)
	}
	if granted.Allows(web[1:], "198.51.100.7", "tcp", 22) {
		t.Error("the grant's group is on the secondary ENI")
	}
	apply(t, w, "web", ssh, g)
	same(t, "grant applied twice", granted, w.State(t))

	apply(t, w, "web", ssh) // expiry
	same(t, "after expiry", enabled, w.State(t))
	apply(t, w, "web", nil) // disable
	w.Faults(false)
	same(t, "after disable", before, w.State(t))
}

func noRoom(t *testing.T, f Factory) {
	w := f(t, StandardSpec())
	apply(t, w, "full", ssh)
	enabled := w.State(t)
	v := w.VM("full")
	d := jit.Desired{VMID: v.ID, Guarded: ssh, Grants: []jit.DesiredGrant{grant("g-full", "198.51.100.7/32")}}
	if err := w.Provider().Check(context.Background(), v, d); !w.NoRoom(err) {
		t.Fatalf("Check with a full ENI: %v, want no room", err)
	}
	if _, err := w.Provider().Apply(context.Background(), v, d); !w.NoRoom(err) {
		t.Fatalf("Apply with a full ENI: %v, want no room", err)
	}
	same(t, "refused grant", enabled, w.State(t))
}

func drift(t *testing.T, f Factory) {
	w := f(t, StandardSpec())
	before := w.State(t)
	apply(t, w, "web", ssh)
	enabled := w.State(t)
	w.AddRule(t, "sg-0web", Rule{Proto: "tcp", From: 22, To: 22, CIDR: "203.0.113.0/24", Desc: "re-added by IaC"})
	if !w.State(t).Allows([]string{"eni-0web0"}, "203.0.113.5", "tcp", 22) {
		t.Fatal("the drift was not injected")
	}
	apply(t, w, "web", ssh)
	if w.State(t).Allows([]string{"eni-0web0"}, "203.0.113.5", "tcp", 22) {
		t.Fatal("a re-added permission survives the next reconcile")
	}
	same(t, "after re-assertion", enabled, w.State(t))
	apply(t, w, "web", nil)
	same(t, "after disable", before, w.State(t))
}
