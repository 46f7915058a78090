package netrule

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// FieldError is one problem with one field of a rule or permission. Field is
// the JSON field name (with an index for list fields), so that a caller can
// prefix it with the path of the object that holds the rule.
type FieldError struct {
	Field  string
	Reason string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) FieldError {
	return FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ParseDirection accepts Inbound or Outbound in any case.
func ParseDirection(s string) (Direction, error) {
	// EqualFold, not ToLower: this runs for every rule of every NSG an
	// assessment compiles, and must not allocate.
	switch {
	case strings.EqualFold(s, "inbound"):
		return Inbound, nil
	case strings.EqualFold(s, "outbound"):
		return Outbound, nil
	}
	return "", fmt.Errorf("direction %q is not one of Inbound, Outbound", s)
}

// ParseAccess accepts Allow or Deny in any case.
func ParseAccess(s string) (Access, error) {
	switch {
	case strings.EqualFold(s, "allow"):
		return Allow, nil
	case strings.EqualFold(s, "deny"):
		return Deny, nil
	}
	return "", fmt.Errorf("access %q is not one of Allow, Deny", s)
}

// Service tags an NSG address prefix may name (the ones drawbridge models).
const (
	TagInternet          = "Internet"
	TagVirtualNetwork    = "VirtualNetwork"
	TagAzureLoadBalancer = "AzureLoadBalancer"
)

type matchKind uint8

const (
	matchPrefix matchKind = iota
	matchAny
	matchInternet
	matchVNet
	matchALB
	// matchService is a service tag of Microsoft-operated addresses
	// (servicetags.go): no internet or virtual network source matches it.
	matchService
)

// addrEntry is one parsed source or destination of a rule: a tag, "*", or a
// prefix (a bare address is its full-length prefix).
type addrEntry struct {
	raw    string
	kind   matchKind
	lo, hi netip.Addr // matchPrefix: the prefix as a range, held inline so that compiling allocates nothing per rule
}

func prefixEntry(raw string, p netip.Prefix) addrEntry {
	p = p.Masked()
	return addrEntry{raw: raw, kind: matchPrefix, lo: p.Addr(), hi: lastAddr(p)}
}

// ParseAddressPrefix checks one NSG address prefix: "*", a service tag
// (Internet, VirtualNetwork, AzureLoadBalancer, any case), an IPv4 or IPv6
// address, or a CIDR prefix without host bits.
func ParseAddressPrefix(s string) error {
	_, err := parseAddrEntry(s)
	return err
}

func parseAddrEntry(s string) (addrEntry, error) {
	t := strings.TrimSpace(s)
	e := addrEntry{raw: s}
	switch {
	case t == "":
		return e, fmt.Errorf("address prefix is empty")
	case t == "*" || strings.EqualFold(t, "any"):
		e.kind = matchAny
		return e, nil
	case strings.EqualFold(t, TagInternet):
		e.kind = matchInternet
		return e, nil
	case strings.EqualFold(t, TagVirtualNetwork):
		e.kind = matchVNet
		return e, nil
	case strings.EqualFold(t, TagAzureLoadBalancer), strings.EqualFold(t, "AZURE_LOADBALANCER"):
		e.kind = matchALB
		return e, nil
	case strings.EqualFold(t, "INTERNET"):
		e.kind = matchInternet
		return e, nil
	case strings.EqualFold(t, "VIRTUAL_NETWORK"):
		e.kind = matchVNet
		return e, nil
	}
	if tag, ok := LookupServiceTag(t); ok {
		e.kind = matchService
		if tag.InternetFacing {
			e.kind = matchInternet
		}
		return e, nil
	}
	p, err := parseCIDROrAddr(t)
	if err != nil {
		return e, fmt.Errorf("%q is not an IP address, CIDR prefix, \"*\" or an Azure service tag (Internet, VirtualNetwork, AzureLoadBalancer, AzureCloud, Storage, GatewayManager, ...)", s)
	}
	if p.Masked() != p {
		return e, fmt.Errorf("%q has host bits set; the prefix is %s", s, p.Masked())
	}
	return prefixEntry(s, p), nil
}

func parseCIDROrAddr(t string) (netip.Prefix, error) {
	if strings.Contains(t, "/") {
		p, err := netip.ParsePrefix(t)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("IPv4-mapped IPv6")
		}
		return p, nil
	}
	a, err := netip.ParseAddr(t)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a.Zone() != "" || a.Is4In6() {
		return netip.Prefix{}, fmt.Errorf("zoned or mapped address")
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// CheckSecurityRule returns every problem with r as an NSG custom rule:
// name, priority 100-4096, direction, access, protocol, address prefixes and
// port ranges. Missing source port ranges mean "*"; the other address and
// port fields are required, as in Azure.
func CheckSecurityRule(r SecurityRule) []error {
	var errs []error
	if strings.TrimSpace(r.Name) == "" {
		errs = append(errs, fieldErr("name", "rule name is required"))
	}
	if r.Priority < MinPriority || r.Priority > MaxPriority {
		errs = append(errs, fieldErr("priority", "%d is outside the range %d-%d", r.Priority, MinPriority, MaxPriority))
	}
	if _, err := ParseDirection(string(r.Direction)); err != nil {
		errs = append(errs, fieldErr("direction", "%v", err))
	}
	if _, err := ParseAccess(string(r.Access)); err != nil {
		errs = append(errs, fieldErr("access", "%v", err))
	}
	if _, err := ParseProtocol(string(r.Protocol)); err != nil {
		errs = append(errs, fieldErr("protocol", "%v", err))
	}
	errs = append(errs, checkPrefixes("sourceAddressPrefix", r.SourceAddressPrefix, r.SourceAddressPrefixes, len(r.SourceApplicationSecurityGroups) == 0)...)
	errs = append(errs, checkPrefixes("destinationAddressPrefix", r.DestinationAddressPrefix, r.DestinationAddressPrefixes, len(r.DestinationApplicationSecurityGroups) == 0)...)
	for i, g := range r.SourceApplicationSecurityGroups {
		if strings.TrimSpace(g.ID) == "" {
			errs = append(errs, fieldErr(fmt.Sprintf("sourceApplicationSecurityGroups[%d].id", i), "id is required"))
		}
	}
	for i, g := range r.DestinationApplicationSecurityGroups {
		if strings.TrimSpace(g.ID) == "" {
			errs = append(errs, fieldErr(fmt.Sprintf("destinationApplicationSecurityGroups[%d].id", i), "id is required"))
		}
	}
	errs = append(errs, checkPorts("sourcePortRange", r.SourcePortRange, r.SourcePortRanges, false)...)
	errs = append(errs, checkPorts("destinationPortRange", r.DestinationPortRange, r.DestinationPortRanges, true)...)
	return errs
}

func checkPrefixes(field, one string, many []string, required bool) []error {
	var errs []error
	if one != "" && len(many) > 0 {
		errs = append(errs, fieldErr(field+"es", "set either %s or %ses, not both", field, field))
	}
	if one == "" && len(many) == 0 && required {
		errs = append(errs, fieldErr(field, "one of %s or %ses is required", field, field))
	}
	if one != "" {
		if err := ParseAddressPrefix(one); err != nil {
			errs = append(errs, fieldErr(field, "%v", err))
		}
	}
	for i, s := range many {
		if err := ParseAddressPrefix(s); err != nil {
			errs = append(errs, fieldErr(fmt.Sprintf("%ses[%d]", field, i), "%v", err))
		}
	}
	return errs
}

func checkPorts(field, one string, many []string, required bool) []error {
	var errs []error
	if one != "" && len(many) > 0 {
		errs = append(errs, fieldErr(field+"s", "set either %s or %ss, not both", field, field))
	}
	if one == "" && len(many) == 0 && required {
		errs = append(errs, fieldErr(field, "one of %s or %ss is required", field, field))
	}
	if one != "" {
		if _, err := ParsePortRange(one); err != nil {
			errs = append(errs, fieldErr(field, "%v", err))
		}
	}
	for i, s := range many {
		if _, err := ParsePortRange(s); err != nil {
			errs = append(errs, fieldErr(fmt.Sprintf("%ss[%d]", field, i), "%v", err))
		}
	}
	return errs
}

// CheckIPPermission returns every problem with an EC2 ingress permission:
// protocol (tcp, udp, icmp, icmpv6, -1 or a protocol number), ports (0-65535
// with FromPort <= ToPort for tcp and udp; -1 allowed for icmp and -1), and
// the CIDRs (IPv4 in IpRanges, IPv6 in Ipv6Ranges, no host bits).
func CheckIPPermission(p IPPermission) []error {
	var errs []error
	proto := strings.ToLower(p.IPProtocol)
	switch proto {
	case "tcp", "udp", "6", "17":
		if p.FromPort < 0 || p.FromPort > 65535 {
			errs = append(errs, fieldErr("FromPort", "%d is not a port number (0-65535)", p.FromPort))
		}
		if p.ToPort < 0 || p.ToPort > 65535 {
			errs = append(errs, fieldErr("ToPort", "%d is not a port number (0-65535)", p.ToPort))
		}
		if p.FromPort > p.ToPort {
			errs = append(errs, fieldErr("ToPort", "port range %d-%d: start is after end", p.FromPort, p.ToPort))
		}
	case "-1":
		// All traffic: EC2 ignores the ports.
	case "icmp", "icmpv6", "1", "58":
		// The ports hold the ICMP type and code; -1 means all.
		if p.FromPort < -1 || p.FromPort > 255 {
			errs = append(errs, fieldErr("FromPort", "%d is not an ICMP type (-1 to 255)", p.FromPort))
		}
	case "":
		errs = append(errs, fieldErr("IpProtocol", "protocol is required (tcp, udp, icmp, icmpv6 or -1)"))
	default:
		if n, err := strconv.Atoi(proto); err != nil || n < 0 || n > 255 {
			errs = append(errs, fieldErr("IpProtocol", "protocol %q is not tcp, udp, icmp, icmpv6, -1 or a protocol number 0-255", p.IPProtocol))
		}
	}
	for i, r := range p.IPRanges {
		if err := checkCIDR(r.CidrIP, true); err != nil {
			errs = append(errs, fieldErr(fmt.Sprintf("IpRanges[%d].CidrIp", i), "%v", err))
		}
	}
	for i, r := range p.IPv6Ranges {
		if err := checkCIDR(r.CidrIPv6, false); err != nil {
			errs = append(errs, fieldErr(fmt.Sprintf("Ipv6Ranges[%d].CidrIpv6", i), "%v", err))
		}
	}
	return errs
}

func checkCIDR(s string, v4 bool) error {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a CIDR prefix", s)
	}
	if p.Addr().Is4() != v4 || p.Addr().Is4In6() {
		if v4 {
			return fmt.Errorf("%q is not an IPv4 CIDR (IPv6 goes in Ipv6Ranges)", s)
		}
		return fmt.Errorf("%q is not an IPv6 CIDR (IPv4 goes in IpRanges)", s)
	}
	if p.Masked() != p {
		return fmt.Errorf("%q has host bits set; the prefix is %s", s, p.Masked())
	}
	return nil
}
