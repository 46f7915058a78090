package netrule

import (
	"net/netip"
	"reflect"
	"strconv"
	"testing"
)

// An NSG with many rules that cannot decide a management port (other
// ports, outbound) compiled for the management ports only gives, for those
// ports, exactly the verdicts of a full compile, and only the relevant
// rules are kept.
func TestCompileNSGPortsIntoSkipsIrrelevantRules(t *testing.T) {
	rule := func(name string, prio int, dir Direction, acc Access, src string, ports ...string) SecurityRule {
		r := SecurityRule{Name: name, Priority: prio, Direction: dir, Access: acc, Protocol: Tcp,
			SourceAddressPrefix: src, SourcePortRange: "*", DestinationAddressPrefix: "*"}
		if len(ports) == 1 {
			r.DestinationPortRange = ports[0]
		} else {
			r.DestinationPortRanges = ports
		}
		return r
	}
	n := NSG{ID: "many"}
	for i := 0; i < 200; i++ {
		// Irrelevant: other ports (single, ranges, lists), and outbound rules on 22.
		n.SecurityRules = append(n.SecurityRules,
			rule("other-"+strconv.Itoa(i), 1000+i, Inbound, Allow, "Internet", strconv.Itoa(8000+i)),
			rule("deny-range-"+strconv.Itoa(i), 1500+i, Inbound, Deny, "*", "23-3388", "3390-5984"),
			rule("out-"+strconv.Itoa(i), 1000+i, Outbound, Deny, "*", "22"))
	}
	n.SecurityRules = append(n.SecurityRules,
		rule("deny-ssh-range", 200, Inbound, Deny, "198.18.0.0/15", "22"),
		rule("ssh", 300, Inbound, Allow, "Internet", "22"),
		rule("rdp-internal", 310, Inbound, Allow, "10.0.0.0/8", "3389"),
		rule("winrm", 320, Inbound, Allow, "*", "80", "5985-5986"),
		rule("vnet-all", 330, Inbound, Allow, "VirtualNetwork", "*"),
		rule("deny-3389", 4000, Inbound, Deny, "*", "3000-4000"))
	ports := []int{22, 3389, 5985, 5986}
	full, err := CompileNSG(n)
	if err != nil {
		t.Fatal(err)
	}
	var c CompiledNSG
	if err := CompileNSGPortsInto(&n, &c, ports); err != nil {
		t.Fatal(err)
	}
	if len(c.rules) != 6 {
		t.Errorf("compiled %d rules, want the 6 that may decide a management port", len(c.rules))
	}
	env := NewEnv(netip.MustParsePrefix("10.0.0.0/16"))
	dest := netip.MustParseAddr("10.0.0.4")
	for _, port := range ports {
		for _, src := range []Source{env.InternetSource(), AddressSource(netip.MustParseAddr("198.18.0.1")), AddressSource(netip.MustParseAddr("10.0.9.9"))} {
			q := Query{Destination: dest, Port: port, Protocol: Tcp, Source: src}
			want := EvaluateAzure([]*CompiledNSG{full}, env, q)
			got := EvaluateAzure([]*CompiledNSG{&c}, env, q)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("port %d from %s: filtered %+v, full %+v", port, src.Label, got, want)
			}
		}
	}
	// Written out: 22 from the internet is allowed by ssh; 3389 from the
	// internet is denied by deny-3389; 5985 is allowed by winrm.
	for port, want := range map[int]string{22: "ssh", 3389: "deny-3389", 5985: "winrm"} {
		v := EvaluateAzure([]*CompiledNSG{&c}, env, Query{Destination: dest, Port: port, Protocol: Tcp, Source: env.InternetSource()})
		if v.Deciding().Rule != want || v.Allowed != (want != "deny-3389") {
			t.Errorf("port %d: %+v, want decided by %s", port, v, want)
		}
	}
	// A rule whose ports do not parse is still reported.
	bad := NSG{ID: "bad", SecurityRules: []SecurityRule{rule("broken", 100, Inbound, Allow, "*", "22-x")}}
	if err := CompileNSGPortsInto(&bad, &c, ports); err == nil {
		t.Error("an invalid destination port range was not reported")
	}
	// Evaluating for a port it was not compiled for is a programming error.
	_ = CompileNSGPortsInto(&n, &c, ports)
	defer func() {
		if recover() == nil {
			t.Error("evaluating a port-filtered NSG for another port did not panic")
		}
	}()
	EvaluateAzure([]*CompiledNSG{&c}, env, Query{Destination: dest, Port: 8000, Protocol: Tcp, Source: env.InternetSource()})
}

// AllowedOnly changes nothing for allowed verdicts and leaves denied ones bare.
func TestScratchAllowedOnly(t *testing.T) {
	n := NSG{ID: "n", SecurityRules: []SecurityRule{{Name: "ssh", Priority: 100, Direction: Inbound, Access: Allow, Protocol: Tcp,
		SourceAddressPrefix: "Internet", SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "22"}}}
	c, err := CompileNSG(n)
	if err != nil {
		t.Fatal(err)
	}
	env := NewEnv(netip.MustParsePrefix("10.0.0.0/16"))
	s := Scratch{AllowedOnly: true}
	for _, port := range []int{22, 3389} {
		q := Query{Destination: netip.MustParseAddr("10.0.0.4"), Port: port, Protocol: Tcp, Source: env.InternetSource()}
		want := EvaluateAzure([]*CompiledNSG{c}, env, q)
		got := EvaluateAzureScratch(&s, []*CompiledNSG{c}, env, q)
		if !want.Allowed {
			want = Verdict{Protocol: want.Protocol}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("port %d: %+v, want %+v", port, got, want)
		}
	}
}

// quickPortRange agrees with ParsePortRange wherever it answers.
func TestQuickPortRange(t *testing.T) {
	for _, s := range []string{"*", "0", "22", "65535", "65536", "80-90", "90-80", "22-", "-22", "", " 22", "22 ", "+22", "1-2-3", "099999", "00022", "a", "5985-5986", "0-65535"} {
		got, ok := quickPortRange(s)
		want, err := ParsePortRange(s)
		if ok && (err != nil || got != want) {
			t.Errorf("%q: quick %v, ParsePortRange %v %v", s, got, want, err)
		}
		if !ok && err == nil && s != " 22" && s != "22 " && s != "+22" { // those fall back to ParsePortRange
			t.Errorf("%q: quick refused a plain spelling ParsePortRange accepts (%v)", s, want)
		}
	}
}

// firstInRange is the First of intersectRange.
func TestFirstInRange(t *testing.T) {
	env := NewEnv(netip.MustParsePrefix("10.0.0.0/16"))
	sets := []AddressSet{env.Internet(), PrefixSet(netip.MustParsePrefix("198.18.0.0/15")), {}, AddrSet(netip.MustParseAddr("2001:db8::1"))}
	for _, set := range sets {
		for _, p := range []string{"0.0.0.0/0", "10.0.0.0/8", "198.18.0.0/16", "198.19.255.0/24", "::/0", "2000::/3", "8.8.8.8/32"} {
			pr := netip.MustParsePrefix(p)
			lo, hi := pr.Addr(), lastAddr(pr)
			m := set.intersectRange(lo, hi)
			got, ok := set.firstInRange(lo, hi)
			if ok != !m.IsEmpty() || got != m.First() {
				t.Errorf("%v within %s: firstInRange %v %v, intersectRange %v", set, p, got, ok, m)
			}
		}
	}
}
