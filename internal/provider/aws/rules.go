package aws

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// Rule is one ingress rule as EC2 keeps it: a protocol, a port range and
// exactly one source. EC2's IpPermissions are lists of these grouped by
// protocol and ports; working rule by rule makes "revoke exactly this" and
// "put exactly this back" set operations.
type Rule struct {
	Protocol     string `json:"p"` // "tcp", "udp", "icmp", "icmpv6", "-1" or an IP protocol number
	From         int32  `json:"f"` // -1 where the protocol has no ports
	To           int32  `json:"t"`
	CIDRv4       string `json:"v4,omitempty"`
	CIDRv6       string `json:"v6,omitempty"`
	GroupID      string `json:"g,omitempty"`
	GroupOwner   string `json:"o,omitempty"`
	PrefixListID string `json:"pl,omitempty"`
	Description  string `json:"d,omitempty"`
}

// Key identifies a rule as EC2 does: everything but the description.
func (r Rule) Key() string {
	return r.Protocol + "|" + strconv.Itoa(int(r.From)) + "|" + strconv.Itoa(int(r.To)) + "|" + r.CIDRv4 + "|" + r.CIDRv6 + "|" + r.GroupID + "|" + r.PrefixListID
}

// remainderMark is the description of every rule JIT adds back as the
// remainder of one it revoked, so an operator can tell it apart; removal
// relies on the stored record, not on the mark.
const remainderMark = "drawbridge-jit: remainder of a rule revoked for JIT"

// normProtocol canonicalises an IpProtocol as EC2 prints it.
func normProtocol(p string) string {
	switch strings.ToLower(p) {
	case "-1", "all":
		return "-1"
	case "tcp", "6":
		return "tcp"
	case "udp", "17":
		return "udp"
	case "icmp", "1":
		return "icmp"
	case "icmpv6", "58":
		return "icmpv6"
	}
	return strings.ToLower(p)
}

func hasPorts(proto string) bool {
	switch proto {
	case "tcp", "udp", "icmp", "icmpv6":
		return true
	}
	return false
}

// fromSDK splits EC2 permissions into rules.
func fromSDK(perms []types.IpPermission) []Rule {
	var out []Rule
	for _, p := range perms {
		base := Rule{Protocol: normProtocol(awssdk.ToString(p.IpProtocol)), From: -1, To: -1}
		if hasPorts(base.Protocol) {
			if p.FromPort != nil {
				base.From = *p.FromPort
			}
			if p.ToPort != nil {
				base.To = *p.ToPort
			}
		}
		for _, r := range p.IpRanges {
			x := base
			x.CIDRv4, x.Description = awssdk.ToString(r.CidrIp), awssdk.ToString(r.Description)
			out = append(out, x)
		}
		for _, r := range p.Ipv6Ranges {
			x := base
			x.CIDRv6, x.Description = awssdk.ToString(r.CidrIpv6), awssdk.ToString(r.Description)
			out = append(out, x)
		}
		for _, r := range p.UserIdGroupPairs {
			x := base
			x.GroupID, x.GroupOwner, x.Description = awssdk.ToString(r.GroupId), awssdk.ToString(r.UserId), awssdk.ToString(r.Description)
			out = append(out, x)
		}
		for _, r := range p.PrefixListIds {
			x := base
			x.PrefixListID, x.Description = awssdk.ToString(r.PrefixListId), awssdk.ToString(r.Description)
			out = append(out, x)
		}
	}
	return out
}

// toSDK groups rules into EC2 permissions by protocol and ports, in the
// order their first rule appears.
func toSDK(rules []Rule) []types.IpPermission {
	var out []types.IpPermission
	idx := map[string]int{}
	for _, r := range rules {
		k := r.Protocol + "|" + strconv.Itoa(int(r.From)) + "|" + strconv.Itoa(int(r.To))
		i, ok := idx[k]
		if !ok {
			p := types.IpPermission{IpProtocol: awssdk.String(r.Protocol)}
			if hasPorts(r.Protocol) {
				p.FromPort, p.ToPort = awssdk.Int32(r.From), awssdk.Int32(r.To)
			}
			out = append(out, p)
			i = len(out) - 1
			idx[k] = i
		}
		p := &out[i]
		desc := func() *string {
			if r.Description == "" {
				return nil
			}
			return awssdk.String(r.Description)
		}
		switch {
		case r.CIDRv4 != "":
			p.IpRanges = append(p.IpRanges, types.IpRange{CidrIp: awssdk.String(r.CIDRv4), Description: desc()})
		case r.CIDRv6 != "":
			p.Ipv6Ranges = append(p.Ipv6Ranges, types.Ipv6Range{CidrIpv6: awssdk.String(r.CIDRv6), Description: desc()})
		case r.GroupID != "":
			pair := types.UserIdGroupPair{GroupId: awssdk.String(r.GroupID), Description: desc()}
			if r.GroupOwner != "" {
				pair.UserId = awssdk.String(r.GroupOwner)
			}
			p.UserIdGroupPairs = append(p.UserIdGroupPairs, pair)
		case r.PrefixListID != "":
			p.PrefixListIds = append(p.PrefixListIds, types.PrefixListId{PrefixListId: awssdk.String(r.PrefixListID), Description: desc()})
		}
	}
	return out
}

// held is one (protocol, port) a JIT-enabled VM needs closed in a group.
type held struct {
	proto string // "tcp" or "udp"
	port  int32
}

func heldPorts(holders []Holder) []held {
	var out []held
	for _, h := range holders {
		for _, g := range h.Ports {
			for _, p := range g.Protocol.EC2Protocols() {
				x := held{p, int32(g.Port)}
				if !slices.Contains(out, x) {
					out = append(out, x)
				}
			}
		}
	}
	return out
}

func covers(r Rule, h held) bool {
	switch r.Protocol {
	case "-1":
		return true
	case "tcp", "udp":
		return r.Protocol == h.proto && h.port >= r.From && h.port <= r.To
	}
	return false
}

// carve takes every rule of user that lets in a held port out and puts its
// remainder in its place: the same source, the protocols and ports it
// allowed minus the held ones. It returns the wanted rules, the user rules
// revoked and the remainder rules added (those the user did not have).
func carve(user []Rule, hs []held) (want, revoked, added []Rule) {
	have := map[string]bool{}
	for _, r := range user {
		have[r.Key()] = true
	}
	seen := map[string]bool{}
	add := func(r Rule) {
		if !seen[r.Key()] {
			seen[r.Key()] = true
			want = append(want, r)
		}
	}
	for _, r := range user {
		var cov []held
		for _, h := range hs {
			if covers(r, h) {
				cov = append(cov, h)
			}
		}
		if len(cov) == 0 {
			add(r)
			continue
		}
		revoked = append(revoked, r)
		for _, rem := range remainder(r, cov) {
			if have[rem.Key()] {
				continue // the user has it anyway: not JIT's to add or remove
			}
			if !seen[rem.Key()] {
				added = append(added, rem)
			}
			add(rem)
		}
	}
	return want, revoked, added
}

// remainder is what of r stays allowed once the covered ports are closed.
// An all-traffic ("-1") rule keeps every IP protocol: TCP and UDP on every
// other port, and one rule per other IP protocol number (ICMP for IPv4
// sources, ICMPv6 for IPv6 ones), because EC2 cannot say "everything but one
// port" in one rule. Restoring puts the "-1" rule back.
func remainder(r Rule, cov []held) []Rule {
	mk := func(proto string, from, to int32) Rule {
		x := r
		x.Protocol, x.From, x.To, x.Description = proto, from, to, remainderMark
		return x
	}
	split := func(proto string, from, to int32) []Rule {
		var out []Rule
		for _, pr := range subtract(from, to, portsOf(cov, proto)) {
			out = append(out, mk(proto, pr[0], pr[1]))
		}
		return out
	}
	if r.Protocol != "-1" {
		return split(r.Protocol, r.From, r.To)
	}
	out := append(split("tcp", 0, 65535), split("udp", 0, 65535)...)
	for n := 0; n <= 255; n++ {
		switch {
		case n == 6 || n == 17:
		case n == 1:
			if r.CIDRv6 == "" {
				out = append(out, mk("icmp", -1, -1))
			}
		case n == 58:
			if r.CIDRv4 == "" {
				out = append(out, mk("icmpv6", -1, -1))
			}
		default:
			out = append(out, mk(strconv.Itoa(n), -1, -1))
		}
	}
	return out
}

func portsOf(cov []held, proto string) []int32 {
	var out []int32
	for _, h := range cov {
		if h.proto == proto {
			out = append(out, h.port)
		}
	}
	slices.Sort(out)
	return out
}

// subtract returns the sub-ranges of [from, to] without the given (sorted)
// ports, ascending.
func subtract(from, to int32, ports []int32) [][2]int32 {
	var out [][2]int32
	lo := from
	for _, p := range ports {
		if p < lo || p > to {
			continue
		}
		if p > lo {
			out = append(out, [2]int32{lo, p - 1})
		}
		lo = p + 1
	}
	if lo <= to {
		out = append(out, [2]int32{lo, to})
	}
	return out
}

// grantRules are the rules of a grant's security group.
func grantRules(g jit.DesiredGrant) []Rule {
	desc := "drawbridge JIT grant " + sanitizeDesc(g.GrantID) + " until " + g.End.UTC().Format("2006-01-02T15:04:05Z")
	var out []Rule
	for _, proto := range g.Protocol.EC2Protocols() {
		base := Rule{Protocol: proto, From: int32(g.Port), To: int32(g.Port), Description: desc}
		switch {
		case g.Source.IsAny():
			v4, v6 := base, base
			v4.CIDRv4, v6.CIDRv6 = "0.0.0.0/0", "::/0"
			out = append(out, v4, v6)
		case g.Source.Prefix().Addr().Is4():
			base.CIDRv4 = g.Source.Prefix().String()
			out = append(out, base)
		default:
			base.CIDRv6 = g.Source.Prefix().String()
			out = append(out, base)
		}
	}
	return out
}

// sanitizeDesc keeps the characters EC2 allows in descriptions
// (a-zA-Z0-9, spaces and ._-:/()#,@[]+=&;{}!$*), replacing the rest, and
// cuts to 255 characters.
func sanitizeDesc(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', strings.ContainsRune(" ._-:/()#,@[]+=&;{}!$*", r):
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	out := b.String()
	if len(out) > 255 {
		out = out[:255]
	}
	return out
}

// diff returns the rules of want not in cur (to authorize) and of cur not
// in want (to revoke), by EC2's identity (description excluded).
func diff(cur, want []Rule) (add, del []Rule) {
	in := func(rs []Rule) map[string]bool {
		m := map[string]bool{}
		for _, r := range rs {
			m[r.Key()] = true
		}
		return m
	}
	c, w := in(cur), in(want)
	for _, r := range want {
		if !c[r.Key()] {
			add = append(add, r)
		}
	}
	for _, r := range cur {
		if !w[r.Key()] {
			del = append(del, r)
		}
	}
	return add, del
}

func (r Rule) String() string {
	src := r.CIDRv4 + r.CIDRv6 + r.GroupID + r.PrefixListID
	if r.Protocol == "-1" {
		return "all traffic from " + src
	}
	return fmt.Sprintf("%s %d-%d from %s", r.Protocol, r.From, r.To, src)
}
