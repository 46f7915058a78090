package netrule

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// AWS's evaluation: security groups allow only, and the union of every
// group's ingress permissions applies.

// CompiledSG is a security group's ingress permissions, parsed.
type CompiledSG struct {
	id    string
	perms []compiledPerm
}

type compiledPerm struct {
	ref     RuleRef
	all     bool // IpProtocol -1: every protocol and port
	proto   Protocol
	ports   PortRange
	entries []addrEntry
}

// CompileSecurityGroup parses sg's permissions. Permissions must be valid
// (see CheckIPPermission); the first invalid one is reported by index.
func CompileSecurityGroup(sg SecurityGroup) (*CompiledSG, error) {
	c := &CompiledSG{id: sg.GroupID}
	for i, p := range sg.IPPermissions {
		if errs := CheckIPPermission(p); len(errs) > 0 {
			return nil, fmt.Errorf("security group %s: IpPermissions[%d]: %w", sg.GroupID, i, errs[0])
		}
		cp := compiledPerm{
			ref:   RuleRef{Group: sg.GroupID, Rule: "IpPermissions[" + strconv.Itoa(i) + "]", Access: Allow, Protocol: p.IPProtocol},
			proto: p.Protocol(),
			ports: p.Ports(),
		}
		cp.all = cp.proto == Any
		switch {
		case cp.all:
			cp.ref.Ports = "*"
		case cp.proto == Icmp:
			cp.ref.Ports = "icmp"
		default:
			cp.ref.Ports = cp.ports.String()
		}
		for _, r := range p.IPRanges {
			pr, _ := netip.ParsePrefix(strings.TrimSpace(r.CidrIP))
			cp.entries = append(cp.entries, prefixEntry(r.CidrIP, pr))
		}
		for _, r := range p.IPv6Ranges {
			pr, _ := netip.ParsePrefix(strings.TrimSpace(r.CidrIPv6))
			cp.entries = append(cp.entries, prefixEntry(r.CidrIPv6, pr))
		}
		c.perms = append(c.perms, cp)
	}
	return c, nil
}

// EvaluateAWS answers q for an ENI with the given security groups. Security
// groups only allow: a connection gets in if any permission of any group
// allows it (protocol -1 allows every protocol and port; ICMP permissions
// match ICMP queries whatever the port), and is denied otherwise. The
// destination is not consulted: a group applies to every address of the ENI.
func EvaluateAWS(groups []*CompiledSG, q Query) Verdict {
	if q.Protocol == Any || q.Protocol == "" {
		if v := evalAWS(groups, q, Tcp); v.Allowed {
			return v
		}
		if v := evalAWS(groups, q, Udp); v.Allowed {
			return v
		}
		return Verdict{Protocol: Tcp, Example: q.Source.Set.First()}
	}
	return evalAWS(groups, q, q.Protocol)
}

func evalAWS(groups []*CompiledSG, q Query, proto Protocol) Verdict {
	for _, g := range groups {
		if g == nil {
			continue
		}
		for i := range g.perms {
			p := &g.perms[i]
			switch {
			case p.all:
			case p.proto != proto:
				continue
			case proto != Icmp && !p.ports.Contains(q.Port):
				continue
			}
			for j := range p.entries {
				first, ok := q.Source.Set.firstInRange(p.entries[j].lo, p.entries[j].hi)
				if !ok {
					continue
				}
				ref := p.ref
				ref.Source = p.entries[j].raw
				return Verdict{Allowed: true, Protocol: proto, Example: first, Rules: []RuleRef{ref}}
			}
		}
	}
	return Verdict{Protocol: proto, Example: q.Source.Set.First()}
}
