package netrule

import (
	"net/netip"
	"reflect"
	"testing"
)

// Compiling one NSG after another into the same CompiledNSG, and
// evaluating with one Scratch, gives the verdicts a fresh compile gives.
func TestCompileNSGIntoReusesAndAgrees(t *testing.T) {
	rule := func(name string, prio int, acc Access, src, port string) SecurityRule {
		return SecurityRule{Name: name, Priority: prio, Direction: Inbound, Access: acc, Protocol: Tcp,
			SourceAddressPrefix: src, SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: port}
	}
	big := NSG{ID: "big", SecurityRules: []SecurityRule{
		rule("deny-ssh-range", 100, Deny, "198.18.0.0/15", "22"),
		rule("ssh", 200, Allow, "Internet", "22"),
		rule("rdp", 300, Allow, "10.0.0.0/8", "3389"),
		rule("web", 400, Allow, "*", "443"),
	}}
	small := NSG{ID: "small", SecurityRules: []SecurityRule{rule("rdp-any", 150, Allow, "*", "3389")}}
	bad := NSG{ID: "bad", SecurityRules: []SecurityRule{rule("broken", 100, Allow, "10.0.0.1/8", "22")}}
	env := NewEnv(netip.MustParsePrefix("10.0.0.0/16"))
	var c CompiledNSG
	var s Scratch
	for _, n := range []NSG{big, small, bad, big, small} {
		fresh, ferr := CompileNSG(n)
		err := CompileNSGInto(&n, &c)
		if (err == nil) != (ferr == nil) {
			t.Fatalf("%s: CompileNSGInto error %v, CompileNSG error %v", n.ID, err, ferr)
		}
		if err != nil {
			continue
		}
		if c.ID() != n.ID {
			t.Errorf("ID = %s, want %s", c.ID(), n.ID)
		}
		for _, port := range []int{22, 443, 3389, 5985} {
			q := Query{Destination: netip.MustParseAddr("10.0.0.4"), Port: port, Protocol: Tcp, Source: env.InternetSource()}
			got := EvaluateAzureScratch(&s, []*CompiledNSG{nil, &c}, env, q)
			want := EvaluateAzure([]*CompiledNSG{nil, fresh}, env, q)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s port %d: reused %+v, fresh %+v", n.ID, port, got, want)
			}
		}
	}
	// Expected answers written out: big allows 22 from the internet outside
	// 198.18.0.0/15 through rule ssh; small allows 3389 through rdp-any.
	_ = CompileNSGInto(&big, &c)
	v := EvaluateAzureScratch(&s, []*CompiledNSG{&c}, env, Query{Destination: netip.MustParseAddr("10.0.0.4"), Port: 22, Protocol: Tcp, Source: env.InternetSource()})
	if !v.Allowed || v.Deciding().Rule != "ssh" || netip.MustParsePrefix("198.18.0.0/15").Contains(v.Example) {
		t.Errorf("big, port 22: %+v; want allowed by ssh from outside 198.18.0.0/15", v)
	}
	_ = CompileNSGInto(&small, &c)
	v = EvaluateAzureScratch(&s, []*CompiledNSG{&c}, env, Query{Destination: netip.MustParseAddr("10.0.0.4"), Port: 22, Protocol: Tcp, Source: env.InternetSource()})
	if v.Allowed || v.Deciding().Rule != "DenyAllInBound" {
		t.Errorf("small, port 22: %+v; want denied by DenyAllInBound", v)
	}
}
