package netrule

import (
	"net/netip"
	"strings"
	"testing"
)

func set(ps ...string) AddressSet {
	var s AddressSet
	for _, p := range ps {
		s = s.Union(PrefixSet(netip.MustParsePrefix(p)))
	}
	return s
}

func TestAddressSetOps(t *testing.T) {
	tests := []struct {
		name string
		got  AddressSet
		want string
	}{
		{"union merges adjacent", set("10.0.0.0/25", "10.0.0.128/25"), "{10.0.0.0-10.0.0.255}"},
		{"union keeps families apart", set("255.255.255.255/32", "::/128"), "{255.255.255.255, ::}"},
		{"subtract a hole", set("10.0.0.0/24").Subtract(set("10.0.0.16/28")), "{10.0.0.0-10.0.0.15, 10.0.0.32-10.0.0.255}"},
		{"subtract two holes", set("10.0.0.0/24").Subtract(set("10.0.0.0/28", "10.0.0.240/28")), "{10.0.0.16-10.0.0.239}"},
		{"subtract everything", set("10.0.0.0/24").Subtract(set("0.0.0.0/0")), "{}"},
		{"subtract across ranges", set("10.0.0.0/24", "10.0.2.0/24").Subtract(set("10.0.0.128/25", "10.0.2.0/25")), "{10.0.0.0-10.0.0.127, 10.0.2.128-10.0.2.255}"},
		{"intersect", set("10.0.0.0/8", "192.168.0.0/16").Intersect(set("10.1.0.0/16", "192.168.1.0/24", "172.16.0.0/12")), "{10.1.0.0-10.1.255.255, 192.168.1.0-192.168.1.255}"},
		{"intersect disjoint", set("10.0.0.0/8").Intersect(set("11.0.0.0/8")), "{}"},
	}
	for _, tt := range tests {
		if g := tt.got.String(); g != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, g, tt.want)
		}
	}
}

func TestInternetSet(t *testing.T) {
	in := InternetSet(set("10.0.0.0/16"))
	for addr, want := range map[string]bool{
		"1.0.0.0":        true,
		"8.8.8.8":        true,
		"198.18.0.10":    true, // benchmarking range stands in for public space
		"203.0.113.7":    true,
		"10.0.0.4":       false,
		"172.16.5.5":     false,
		"192.168.1.1":    false,
		"100.64.0.1":     false,
		"127.0.0.1":      false,
		"169.254.1.1":    false,
		"168.63.129.16":  false,
		"224.0.0.1":      false,
		"0.1.2.3":        false,
		"2001:db8::1":    true,
		"fd00::1":        false,
		"fe80::1":        false,
		"::ffff:8.8.8.8": true, // mapped form is unmapped first
	} {
		if got := in.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
	// A virtual network with public address space takes it out of the internet.
	pub := InternetSet(set("198.18.0.0/24"))
	if pub.Contains(netip.MustParseAddr("198.18.0.10")) {
		t.Error("the virtual network's own public space counted as internet")
	}
}

func TestCheckSecurityRule(t *testing.T) {
	ok := r("ok", 100, Allow, Tcp, "Internet", "*", "22")
	tests := []struct {
		name string
		mod  func(*SecurityRule)
		want string // "" = valid
	}{
		{"valid", func(*SecurityRule) {}, ""},
		{"lower-case spellings", func(r *SecurityRule) { r.Access, r.Direction, r.Protocol = "allow", "inbound", "TCP" }, ""},
		{"service tags and lists", func(r *SecurityRule) {
			r.SourceAddressPrefix, r.SourceAddressPrefixes = "", []string{"VirtualNetwork", "AzureLoadBalancer", "10.0.0.5", "2001:db8::/32"}
		}, ""},
		{"priority too low", func(r *SecurityRule) { r.Priority = 99 }, "priority: 99 is outside the range 100-4096"},
		{"priority too high", func(r *SecurityRule) { r.Priority = 4097 }, "priority: 4097 is outside the range 100-4096"},
		{"no name", func(r *SecurityRule) { r.Name = "" }, "name: rule name is required"},
		{"bad access", func(r *SecurityRule) { r.Access = "Permit" }, `access: access "Permit" is not one of Allow, Deny`},
		{"bad direction", func(r *SecurityRule) { r.Direction = "In" }, `direction: direction "In" is not one of Inbound, Outbound`},
		{"bad protocol", func(r *SecurityRule) { r.Protocol = "Sctp" }, `protocol: protocol "Sctp" is not one of Tcp, Udp, Icmp, *`},
		{"bad prefix", func(r *SecurityRule) { r.SourceAddressPrefix = "10.0.0.0/33" }, `sourceAddressPrefix: "10.0.0.0/33" is not an IP address`},
		{"unknown tag", func(r *SecurityRule) { r.SourceAddressPrefix = "Storag" }, `sourceAddressPrefix: "Storag" is not an IP address`},
		{"documented service tag", func(r *SecurityRule) { r.SourceAddressPrefix = "Storage.WestEurope" }, ""},
		{"host bits", func(r *SecurityRule) { r.SourceAddressPrefix = "203.0.113.7/24" }, `sourceAddressPrefix: "203.0.113.7/24" has host bits set; the prefix is 203.0.113.0/24`},
		{"bad entry in a list", func(r *SecurityRule) {
			r.DestinationAddressPrefix, r.DestinationAddressPrefixes = "", []string{"10.0.0.0/8", "nope"}
		}, `destinationAddressPrefixes[1]: "nope"`},
		{"both forms", func(r *SecurityRule) { r.DestinationPortRanges = []string{"80"} }, "destinationPortRanges: set either destinationPortRange or destinationPortRanges, not both"},
		{"no destination port", func(r *SecurityRule) { r.DestinationPortRange = "" }, "destinationPortRange: one of destinationPortRange or destinationPortRanges is required"},
		{"port out of range", func(r *SecurityRule) { r.DestinationPortRange = "65536" }, `destinationPortRange: port range "65536": "65536" is not a port number (0-65535)`},
		{"reversed range", func(r *SecurityRule) { r.DestinationPortRange = "90-80" }, `destinationPortRange: port range "90-80": start is after end`},
		{"bad source port", func(r *SecurityRule) { r.SourcePortRange = "x" }, `sourcePortRange: port range "x"`},
		{"no source", func(r *SecurityRule) { r.SourceAddressPrefix = "" }, "sourceAddressPrefix: one of sourceAddressPrefix or sourceAddressPrefixes is required"},
	}
	for _, tt := range tests {
		rule := ok
		tt.mod(&rule)
		errs := CheckSecurityRule(rule)
		if tt.want == "" {
			if len(errs) != 0 {
				t.Errorf("%s: unexpected errors %v", tt.name, errs)
			}
			continue
		}
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.want) {
			t.Errorf("%s: errors %v, want one containing %q", tt.name, errs, tt.want)
		}
	}
}

func TestCheckIPPermission(t *testing.T) {
	tests := []struct {
		name string
		p    IPPermission
		want string
	}{
		{"tcp 22", perm("tcp", 22, 22, "0.0.0.0/0"), ""},
		{"all traffic", perm("-1", -1, -1, "10.0.0.0/8", "::/0"), ""},
		{"icmp all", perm("icmp", -1, -1, "0.0.0.0/0"), ""},
		{"protocol number", perm("47", 0, 0, "0.0.0.0/0"), ""},
		{"bad protocol", perm("sctp-ish", 0, 0), `IpProtocol: protocol "sctp-ish" is not`},
		{"no protocol", perm("", 0, 0), "IpProtocol: protocol is required"},
		{"port too big", perm("tcp", 22, 70000), "ToPort: 70000 is not a port number (0-65535)"},
		{"negative tcp port", perm("tcp", -1, 22), "FromPort: -1 is not a port number (0-65535)"},
		{"reversed", perm("udp", 90, 80), "ToPort: port range 90-80: start is after end"},
		{"bad cidr", perm("tcp", 22, 22, "0.0.0.0/40"), `IpRanges[0].CidrIp: "0.0.0.0/40" is not a CIDR prefix`},
		{"v6 in v4 list", IPPermission{IPProtocol: "tcp", FromPort: 22, ToPort: 22, IPRanges: []IPRange{{CidrIP: "::/0"}}}, `IpRanges[0].CidrIp: "::/0" is not an IPv4 CIDR`},
		{"host bits", perm("tcp", 22, 22, "10.0.0.1/8"), `IpRanges[0].CidrIp: "10.0.0.1/8" has host bits set`},
	}
	for _, tt := range tests {
		errs := CheckIPPermission(tt.p)
		if tt.want == "" {
			if len(errs) != 0 {
				t.Errorf("%s: unexpected errors %v", tt.name, errs)
			}
			continue
		}
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.want) {
			t.Errorf("%s: errors %v, want one containing %q", tt.name, errs, tt.want)
		}
	}
}
