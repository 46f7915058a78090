package netrule

import (
	"net/netip"
	"strings"
	"testing"
)

// r builds an inbound rule; src, dst and ports are comma-separated and go to
// the plural field when there are several, as Azure documents them.
func r(name string, prio int, acc Access, proto Protocol, src, dst, ports string) SecurityRule {
	sr := SecurityRule{Name: name, Priority: prio, Direction: Inbound, Access: acc, Protocol: proto, SourcePortRange: "*"}
	if s := strings.Split(src, ","); len(s) > 1 {
		sr.SourceAddressPrefixes = s
	} else {
		sr.SourceAddressPrefix = src
	}
	if s := strings.Split(dst, ","); len(s) > 1 {
		sr.DestinationAddressPrefixes = s
	} else {
		sr.DestinationAddressPrefix = dst
	}
	if s := strings.Split(ports, ","); len(s) > 1 {
		sr.DestinationPortRanges = s
	} else {
		sr.DestinationPortRange = ports
	}
	return sr
}

func nsg(id string, rules ...SecurityRule) *NSG { return &NSG{ID: id, Name: id, SecurityRules: rules} }

type want struct {
	allowed bool
	proto   Protocol
	example string
	rules   []string // "group/rule/source"
}

func refs(v Verdict) []string {
	var out []string
	for _, r := range v.Rules {
		out = append(out, r.Group+"/"+r.Rule+"/"+r.Source)
	}
	return out
}

func check(t *testing.T, got Verdict, w want) {
	t.Helper()
	if got.Allowed != w.allowed {
		t.Errorf("allowed = %v, want %v (rules %v)", got.Allowed, w.allowed, refs(got))
	}
	if w.proto != "" && got.Protocol != w.proto {
		t.Errorf("protocol = %s, want %s", got.Protocol, w.proto)
	}
	if w.example != "" && got.Example.String() != w.example {
		t.Errorf("example = %s, want %s", got.Example, w.example)
	}
	if g := strings.Join(refs(got), " | "); g != strings.Join(w.rules, " | ") {
		t.Errorf("rules = %q, want %q", g, strings.Join(w.rules, " | "))
	}
}

func TestEvaluateAzure(t *testing.T) {
	env := NewEnv(netip.MustParsePrefix("10.0.0.0/16"))
	vm := netip.MustParseAddr("10.0.1.4")
	inet := env.InternetSource()
	from := func(s string) Source { return AddressSource(netip.MustParseAddr(s)) }

	tests := []struct {
		name   string
		subnet *NSG
		nic    *NSG
		port   int
		proto  Protocol
		src    Source
		want   want
	}{
		{name: "no NSG anywhere allows everything", port: 22, proto: Tcp, src: inet,
			want: want{allowed: true, example: "1.0.0.0"}},
		{name: "default rules deny the internet", nic: nsg("nic"), port: 22, proto: Tcp, src: inet,
			want: want{example: "1.0.0.0", rules: []string{"nic/DenyAllInBound/*"}}},
		{name: "allow Internet on 22", nic: nsg("nic", r("AllowSSH", 1000, Allow, Tcp, "Internet", "*", "22")), port: 22, proto: Tcp, src: inet,
			want: want{allowed: true, proto: Tcp, example: "1.0.0.0", rules: []string{"nic/AllowSSH/Internet"}}},
		{name: "deny at lower priority shadowed by an allow", nic: nsg("nic",
			r("DenySSH", 200, Deny, Tcp, "Internet", "*", "22"),
			r("AllowSSHAny", 100, Allow, Tcp, "*", "*", "22")), port: 22, proto: Tcp, src: inet,
			want: want{allowed: true, rules: []string{"nic/AllowSSHAny/*"}}},
		{name: "deny at higher priority wins", nic: nsg("nic",
			r("DenySSH", 100, Deny, Tcp, "Internet", "*", "22"),
			r("AllowSSHAny", 200, Allow, Tcp, "*", "*", "22")), port: 22, proto: Tcp, src: inet,
			want: want{example: "1.0.0.0", rules: []string{"nic/DenySSH/Internet"}}},
		{name: "deny of the Internet tag does not cover the virtual network", nic: nsg("nic",
			r("DenySSH", 100, Deny, Tcp, "Internet", "*", "22"),
			r("AllowSSHAny", 200, Allow, Tcp, "*", "*", "22")), port: 22, proto: Tcp, src: from("10.0.5.5"),
			want: want{allowed: true, rules: []string{"nic/AllowSSHAny/*"}}},
		{name: "partial deny leaves the rest of the internet", nic: nsg("nic",
			r("Deny1", 100, Deny, Any, "1.0.0.0/8", "*", "*"),
			r("AllowSSH", 200, Allow, Tcp, "Internet", "*", "22")), port: 22, proto: Tcp, src: inet,
			want: want{allowed: true, example: "2.0.0.0", rules: []string{"nic/AllowSSH/Internet"}}},
		{name: "allow on the subnet NSG blocked at the NIC",
			subnet: nsg("subnet", r("AllowSSH", 100, Allow, Tcp, "Internet", "*", "22")),
			nic:    nsg("nic"), port: 22, proto: Tcp, src: inet,
			want: want{example: "1.0.0.0", rules: []string{"subnet/AllowSSH/Internet", "nic/DenyAllInBound/*"}}},
		{name: "allow on the NIC blocked at the subnet",
			subnet: nsg("subnet"),
			nic:    nsg("nic", r("AllowSSH", 100, Allow, Tcp, "Internet", "*", "22")), port: 22, proto: Tcp, src: inet,
			want: want{example: "1.0.0.0", rules: []string{"subnet/DenyAllInBound/*"}}},
		{name: "both allow, disjoint sources: nothing gets through",
			subnet: nsg("subnet", r("AllowBench", 100, Allow, Tcp, "198.18.0.0/24", "*", "22")),
			nic:    nsg("nic", r("AllowDoc", 100, Allow, Tcp, "203.0.113.0/24", "*", "22")), port: 22, proto: Tcp, src: inet,
			want: want{example: "198.18.0.0", rules: []string{"subnet/AllowBench/198.18.0.0/24", "nic/DenyAllInBound/*"}}},
		{name: "both allow, overlapping sources: the overlap gets through",
			subnet: nsg("subnet", r("AllowBench", 100, Allow, Tcp, "198.18.0.0/15", "*", "22")),
			nic:    nsg("nic", r("AllowHalf", 100, Allow, Tcp, "198.19.0.0/16", "*", "22")), port: 22, proto: Tcp, src: inet,
			want: want{allowed: true, example: "198.19.0.0", rules: []string{"subnet/AllowBench/198.18.0.0/15", "nic/AllowHalf/198.19.0.0/16"}}},
		{name: "port range contains the port", nic: nsg("nic", r("AllowRange", 100, Allow, Tcp, "*", "*", "20-25")), port: 22, proto: Tcp, src: inet,
			want: want{allowed: true, rules: []string{"nic/AllowRange/*"}}},
		{name: "port range ends before the port", nic: nsg("nic", r("AllowRange", 100, Allow, Tcp, "*", "*", "20-25")), port: 26, proto: Tcp, src: inet,
			want: want{rules: []string{"nic/DenyAllInBound/*"}}},
		{name: "port list includes 3389", nic: nsg("nic", r("AllowList", 100, Allow, Tcp, "Internet", "*", "80,443,3389")), port: 3389, proto: Tcp, src: inet,
			want: want{allowed: true, rules: []string{"nic/AllowList/Internet"}}},
		{name: "port list without 3390", nic: nsg("nic", r("AllowList", 100, Allow, Tcp, "Internet", "*", "80,443,3389")), port: 3390, proto: Tcp, src: inet,
			want: want{rules: []string{"nic/DenyAllInBound/*"}}},
		{name: "overlapping ranges: a wide deny ahead of a narrow allow", nic: nsg("nic",
			r("DenyHigh", 100, Deny, Tcp, "*", "*", "3000-3999"),
			r("AllowRDP", 200, Allow, Tcp, "*", "*", "3389")), port: 3389, proto: Tcp, src: inet,
			want: want{rules: []string{"nic/DenyHigh/*"}}},
		{name: "overlapping ranges: a narrow deny does not stop a wide allow on another port", nic: nsg("nic",
			r("DenyRDP", 100, Deny, Tcp, "*", "*", "3389"),
			r("AllowHigh", 200, Allow, Tcp, "*", "*", "3000-3999")), port: 3390, proto: Tcp, src: inet,
			want: want{allowed: true, rules: []string{"nic/AllowHigh/*"}}},
		{name: "UDP allow does not open TCP", nic: nsg("nic", r("AllowUdp", 100, Allow, Udp, "*", "*", "22")), port: 22, proto: Tcp, src: inet,
			want: want{proto: Tcp, rules: []string{"nic/DenyAllInBound/*"}}},
		{name: "protocol * query finds the UDP allow", nic: nsg("nic", r("AllowUdp", 100, Allow, Udp, "*", "*", "22")), port: 22, proto: Any, src: inet,
			want: want{allowed: true, proto: Udp, rules: []string{"nic/AllowUdp/*"}}},
		{name: "rule protocol * covers TCP", nic: nsg("nic", r("AllowAll", 100, Allow, Any, "*", "*", "5985-5986")), port: 5986, proto: Tcp, src: inet,
			want: want{allowed: true, rules: []string{"nic/AllowAll/*"}}},
		{name: "AzureLoadBalancer default rule is not internet exposure", nic: nsg("nic"), port: 22, proto: Tcp, src: inet,
			want: want{rules: []string{"nic/DenyAllInBound/*"}}},
		{name: "the load balancer probe address gets in by the default rule", nic: nsg("nic"), port: 22, proto: Tcp, src: from("168.63.129.16"),
			want: want{allowed: true, rules: []string{"nic/AllowAzureLoadBalancerInBound/AzureLoadBalancer"}}},
		{name: "the virtual network gets in by the default rule", nic: nsg("nic"), port: 3389, proto: Tcp, src: from("10.0.9.9"),
			want: want{allowed: true, rules: []string{"nic/AllowVnetInBound/VirtualNetwork"}}},
		{name: "a private address outside the virtual network does not", nic: nsg("nic"), port: 3389, proto: Tcp, src: from("192.168.1.1"),
			want: want{rules: []string{"nic/DenyAllInBound/*"}}},
		{name: "destination prefix of another subnet does not match", nic: nsg("nic", r("AllowOther", 100, Allow, Tcp, "Internet", "10.0.2.0/24", "22")), port: 22, proto: Tcp, src: inet,
			want: want{rules: []string{"nic/DenyAllInBound/*"}}},
		{name: "destination VirtualNetwork matches the VM", nic: nsg("nic", r("AllowVnetDest", 100, Allow, Tcp, "Internet", "VirtualNetwork", "22")), port: 22, proto: Tcp, src: inet,
			want: want{allowed: true, rules: []string{"nic/AllowVnetDest/Internet"}}},
		{name: "corporate range: a corporate address gets in", nic: nsg("nic", r("AllowCorpRDP", 300, Allow, Tcp, "203.0.113.0/24", "*", "3389")), port: 3389, proto: Tcp, src: from("203.0.113.7"),
			want: want{allowed: true, rules: []string{"nic/AllowCorpRDP/203.0.113.0/24"}}},
		{name: "corporate range: another address does not", nic: nsg("nic", r("AllowCorpRDP", 300, Allow, Tcp, "203.0.113.0/24", "*", "3389")), port: 3389, proto: Tcp, src: from("198.18.0.10"),
			want: want{rules: []string{"nic/DenyAllInBound/*"}}},
		{name: "corporate range: the internet reaches through it", nic: nsg("nic", r("AllowCorpRDP", 300, Allow, Tcp, "203.0.113.0/24", "*", "3389")), port: 3389, proto: Tcp, src: inet,
			want: want{allowed: true, example: "203.0.113.0", rules: []string{"nic/AllowCorpRDP/203.0.113.0/24"}}},
		{name: "deny limited to some source ports does not block", nic: nsg("nic",
			SecurityRule{Name: "DenyLowSrc", Priority: 100, Direction: Inbound, Access: Deny, Protocol: Tcp, SourceAddressPrefix: "*", SourcePortRange: "1-1023", DestinationAddressPrefix: "*", DestinationPortRange: "22"},
			r("AllowSSH", 200, Allow, Tcp, "Internet", "*", "22")), port: 22, proto: Tcp, src: inet,
			want: want{allowed: true, rules: []string{"nic/AllowSSH/Internet"}}},
		{name: "IPv6 any reaches over IPv6 only", nic: nsg("nic", r("AllowV6", 100, Allow, Tcp, "::/0", "*", "22")), port: 22, proto: Tcp, src: inet,
			want: want{allowed: true, example: "2000::", rules: []string{"nic/AllowV6/::/0"}}},
		{name: "several source prefixes: the second matches", nic: nsg("nic", r("AllowTwo", 100, Allow, Tcp, "10.1.0.0/16,198.18.0.0/15", "*", "22")), port: 22, proto: Tcp, src: inet,
			want: want{allowed: true, example: "198.18.0.0", rules: []string{"nic/AllowTwo/198.18.0.0/15"}}},
		{name: "outbound rules are ignored", nic: nsg("nic", SecurityRule{Name: "Out", Priority: 100, Direction: Outbound, Access: Allow, Protocol: Any, SourceAddressPrefix: "*", DestinationAddressPrefix: "*", DestinationPortRange: "*"}), port: 22, proto: Tcp, src: inet,
			want: want{rules: []string{"nic/DenyAllInBound/*"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var path []*CompiledNSG
			for _, n := range []*NSG{tt.subnet, tt.nic} {
				if n == nil {
					path = append(path, nil)
					continue
				}
				c, err := CompileNSG(*n)
				if err != nil {
					t.Fatal(err)
				}
				path = append(path, c)
			}
			got := EvaluateAzure(path, env, Query{Destination: vm, Port: tt.port, Protocol: tt.proto, Source: tt.src})
			check(t, got, tt.want)
		})
	}
}

func TestEvaluateAzureDecidingRuleDetails(t *testing.T) {
	c, err := CompileNSG(*nsg("/nsg/web", r("AllowSSH", 1000, Allow, Tcp, "Internet", "*", "22")))
	if err != nil {
		t.Fatal(err)
	}
	env := NewEnv(netip.MustParsePrefix("10.0.0.0/16"))
	v := EvaluateAzure([]*CompiledNSG{nil, c}, env, Query{Destination: netip.MustParseAddr("10.0.1.4"), Port: 22, Protocol: Tcp, Source: env.InternetSource()})
	want := RuleRef{Group: "/nsg/web", Rule: "AllowSSH", Priority: 1000, Access: Allow, Source: "Internet", Protocol: "Tcp", Ports: "22"}
	if got := v.Deciding(); got != want {
		t.Errorf("deciding = %+v, want %+v", got, want)
	}
	d := EvaluateAzure([]*CompiledNSG{c}, env, Query{Destination: netip.MustParseAddr("10.0.1.4"), Port: 3389, Protocol: Tcp, Source: env.InternetSource()})
	wantDeny := RuleRef{Group: "/nsg/web", Rule: "DenyAllInBound", Priority: 65500, Access: Deny, Default: true, Source: "*", Protocol: "*", Ports: "*"}
	if got := d.Deciding(); got != wantDeny {
		t.Errorf("deciding = %+v, want %+v", got, wantDeny)
	}
}

func TestCompileNSGRejectsInvalidRule(t *testing.T) {
	_, err := CompileNSG(*nsg("nsg1", r("Bad", 50, Allow, Tcp, "*", "*", "22")))
	if err == nil || !strings.Contains(err.Error(), `nsg1: securityRules "Bad": priority: 50 is outside the range 100-4096`) {
		t.Errorf("err = %v", err)
	}
}

func perm(proto string, from, to int, cidrs ...string) IPPermission {
	p := IPPermission{IPProtocol: proto, FromPort: from, ToPort: to}
	for _, c := range cidrs {
		if strings.Contains(c, ":") {
			p.IPv6Ranges = append(p.IPv6Ranges, IPv6Range{CidrIPv6: c})
		} else {
			p.IPRanges = append(p.IPRanges, IPRange{CidrIP: c})
		}
	}
	return p
}

func TestEvaluateAWS(t *testing.T) {
	inet := NewEnv().InternetSource()
	from := func(s string) Source { return AddressSource(netip.MustParseAddr(s)) }
	sg := func(id string, ps ...IPPermission) SecurityGroup {
		return SecurityGroup{GroupID: id, GroupName: id, IPPermissions: ps}
	}
	tests := []struct {
		name   string
		groups []SecurityGroup
		port   int
		proto  Protocol
		src    Source
		want   want
	}{
		{name: "0.0.0.0/0 on 22", groups: []SecurityGroup{sg("sg-ssh", perm("tcp", 22, 22, "0.0.0.0/0"))}, port: 22, proto: Tcp, src: inet,
			want: want{allowed: true, example: "1.0.0.0", rules: []string{"sg-ssh/IpPermissions[0]/0.0.0.0/0"}}},
		{name: "all ports from 10/8 is not internet exposure", groups: []SecurityGroup{sg("sg-int", perm("tcp", 0, 65535, "10.0.0.0/8"))}, port: 3389, proto: Tcp, src: inet,
			want: want{example: "1.0.0.0"}},
		{name: "all ports from 10/8 lets an internal address in", groups: []SecurityGroup{sg("sg-int", perm("tcp", 0, 65535, "10.0.0.0/8"))}, port: 3389, proto: Tcp, src: from("10.1.2.3"),
			want: want{allowed: true, rules: []string{"sg-int/IpPermissions[0]/10.0.0.0/8"}}},
		{name: "union: the second group allows", groups: []SecurityGroup{
			sg("sg-web", perm("tcp", 80, 80, "0.0.0.0/0"), perm("tcp", 443, 443, "0.0.0.0/0")),
			sg("sg-bench", perm("tcp", 22, 22, "198.18.0.0/15"))}, port: 22, proto: Tcp, src: inet,
			want: want{allowed: true, example: "198.18.0.0", rules: []string{"sg-bench/IpPermissions[0]/198.18.0.0/15"}}},
		{name: "protocol -1 allows every port", groups: []SecurityGroup{sg("sg-all", perm("-1", -1, -1, "0.0.0.0/0"))}, port: 5986, proto: Tcp, src: inet,
			want: want{allowed: true, proto: Tcp, rules: []string{"sg-all/IpPermissions[0]/0.0.0.0/0"}}},
		{name: "::/0 reaches over IPv6", groups: []SecurityGroup{sg("sg-v6", perm("tcp", 22, 22, "::/0"))}, port: 22, proto: Tcp, src: inet,
			want: want{allowed: true, example: "2000::", rules: []string{"sg-v6/IpPermissions[0]/::/0"}}},
		{name: "range 20-25 contains 22", groups: []SecurityGroup{sg("sg-r", perm("tcp", 20, 25, "0.0.0.0/0"))}, port: 22, proto: Tcp, src: inet,
			want: want{allowed: true, rules: []string{"sg-r/IpPermissions[0]/0.0.0.0/0"}}},
		{name: "range 5985-5986 does not contain 3389", groups: []SecurityGroup{sg("sg-r", perm("tcp", 5985, 5986, "0.0.0.0/0"))}, port: 3389, proto: Tcp, src: inet,
			want: want{}},
		{name: "udp does not open tcp", groups: []SecurityGroup{sg("sg-u", perm("udp", 22, 22, "0.0.0.0/0"))}, port: 22, proto: Tcp, src: inet,
			want: want{proto: Tcp}},
		{name: "protocol * query finds udp", groups: []SecurityGroup{sg("sg-u", perm("udp", 22, 22, "0.0.0.0/0"))}, port: 22, proto: Any, src: inet,
			want: want{allowed: true, proto: Udp, rules: []string{"sg-u/IpPermissions[0]/0.0.0.0/0"}}},
		{name: "icmp does not open tcp", groups: []SecurityGroup{sg("sg-i", perm("icmp", -1, -1, "0.0.0.0/0"))}, port: 22, proto: Tcp, src: inet,
			want: want{}},
		{name: "no groups: implicit deny", port: 22, proto: Tcp, src: inet, want: want{}},
		{name: "a specific address outside the range", groups: []SecurityGroup{sg("sg-b", perm("tcp", 22, 22, "198.18.0.0/24"))}, port: 22, proto: Tcp, src: from("198.18.1.1"),
			want: want{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cs []*CompiledSG
			for _, g := range tt.groups {
				c, err := CompileSecurityGroup(g)
				if err != nil {
					t.Fatal(err)
				}
				cs = append(cs, c)
			}
			check(t, EvaluateAWS(cs, Query{Port: tt.port, Protocol: tt.proto, Source: tt.src}), tt.want)
		})
	}
}
