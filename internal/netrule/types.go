// Package netrule owns the models of cloud firewall rules and their evaluation:
// Azure network security group (NSG) rules (priority order, allow or deny,
// first match wins, default rules at 65000+) and AWS security group ingress
// permissions (allow only, the union of all groups applies).
//
// It is pure: no I/O, no clock. JSON field names follow each cloud's own API
// (Azure's flattened rule properties, EC2's IpPermissions) so that documents
// can be read and written in the shape operators already know.
package netrule

import (
	"fmt"
	"strconv"
	"strings"
)

// Direction of an NSG rule.
type Direction string

const (
	Inbound  Direction = "Inbound"
	Outbound Direction = "Outbound"
)

// Access of an NSG rule.
type Access string

const (
	Allow Access = "Allow"
	Deny  Access = "Deny"
)

// Protocol is an NSG rule protocol: Tcp, Udp, Icmp or * (any).
type Protocol string

const (
	Tcp  Protocol = "Tcp"
	Udp  Protocol = "Udp"
	Icmp Protocol = "Icmp"
	Any  Protocol = "*"
)

// EC2Protocols maps a JIT port's protocol onto the EC2 protocols that have
// ports: "*" (or anything but Tcp and Udp) means TCP and UDP.
func (p Protocol) EC2Protocols() []string {
	switch p {
	case Tcp:
		return []string{"tcp"}
	case Udp:
		return []string{"udp"}
	}
	return []string{"tcp", "udp"}
}

// ParseProtocol accepts Azure's spellings case-insensitively ("TCP", "tcp", "*", "Any").
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return Tcp, nil
	case "udp":
		return Udp, nil
	case "icmp":
		return Icmp, nil
	case "*", "any":
		return Any, nil
	}
	return "", fmt.Errorf("protocol %q is not one of Tcp, Udp, Icmp, *", s)
}

// Overlaps reports whether traffic of one protocol can match the other.
func (p Protocol) Overlaps(q Protocol) bool {
	return p == Any || q == Any || p == q
}

// Priority bounds for custom NSG rules; default rules sit at 65000 and above.
const (
	MinPriority = 100
	MaxPriority = 4096
)

// SecurityRule is one Azure NSG security rule, with its properties flattened.
// Azure allows either the singular or the plural form of each address and port
// field; both are kept so that a document round-trips unchanged.
type SecurityRule struct {
	Name                       string    `json:"name"`
	Description                string    `json:"description,omitempty"`
	Priority                   int       `json:"priority"`
	Direction                  Direction `json:"direction"`
	Access                     Access    `json:"access"`
	Protocol                   Protocol  `json:"protocol"`
	SourceAddressPrefix        string    `json:"sourceAddressPrefix,omitempty"`
	SourceAddressPrefixes      []string  `json:"sourceAddressPrefixes,omitempty"`
	SourcePortRange            string    `json:"sourcePortRange,omitempty"`
	SourcePortRanges           []string  `json:"sourcePortRanges,omitempty"`
	DestinationAddressPrefix   string    `json:"destinationAddressPrefix,omitempty"`
	DestinationAddressPrefixes []string  `json:"destinationAddressPrefixes,omitempty"`
	DestinationPortRange       string    `json:"destinationPortRange,omitempty"`
	DestinationPortRanges      []string  `json:"destinationPortRanges,omitempty"`
	// Application security groups, in place of source or destination
	// prefixes. Their members are not modelled, so evaluation treats such
	// a rule conservatively (see compileRule): a source group stands for
	// addresses of the virtual network (members are NICs in it); an allow
	// rule to a destination group is taken to reach every VM, a deny rule
	// to one is taken to protect none.
	SourceApplicationSecurityGroups      []SubResource `json:"sourceApplicationSecurityGroups,omitempty"`
	DestinationApplicationSecurityGroups []SubResource `json:"destinationApplicationSecurityGroups,omitempty"`
}

// SubResource refers to another resource by ID, as ARM writes it.
type SubResource struct {
	ID string `json:"id"`
}

// Sources returns the rule's source address prefixes or service tags
// (singular and plural fields together; empty means none given).
func (r SecurityRule) Sources() []string {
	return joinOne(r.SourceAddressPrefix, r.SourceAddressPrefixes)
}

// Destinations returns the rule's destination prefixes or service tags.
func (r SecurityRule) Destinations() []string {
	return joinOne(r.DestinationAddressPrefix, r.DestinationAddressPrefixes)
}

// DestinationPorts returns the rule's destination port ranges as written.
func (r SecurityRule) DestinationPorts() []string {
	return joinOne(r.DestinationPortRange, r.DestinationPortRanges)
}

func joinOne(one string, many []string) []string {
	out := make([]string, 0, len(many)+1)
	if one != "" {
		out = append(out, one)
	}
	return append(out, many...)
}

// PortRange is an inclusive range of ports; "*" is 0-65535.
type PortRange struct {
	From, To int
}

// AllPorts is the "*" range.
var AllPorts = PortRange{0, 65535}

// ParsePortRange parses "22", "80-90" or "*".
func ParsePortRange(s string) (PortRange, error) {
	s = strings.TrimSpace(s)
	if s == "*" {
		return AllPorts, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	from, err := parsePort(lo)
	if err != nil {
		return PortRange{}, fmt.Errorf("port range %q: %w", s, err)
	}
	to := from
	if isRange {
		if to, err = parsePort(hi); err != nil {
			return PortRange{}, fmt.Errorf("port range %q: %w", s, err)
		}
	}
	if from > to {
		return PortRange{}, fmt.Errorf("port range %q: start is after end", s)
	}
	return PortRange{from, to}, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number (0-65535)", s)
	}
	return n, nil
}

// Contains reports whether port lies in the range.
func (r PortRange) Contains(port int) bool { return port >= r.From && port <= r.To }

// Overlaps reports whether two ranges share a port.
func (r PortRange) Overlaps(o PortRange) bool { return r.From <= o.To && o.From <= r.To }

func (r PortRange) String() string {
	switch {
	case r == AllPorts:
		return "*"
	case r.From == r.To:
		return strconv.Itoa(r.From)
	}
	return fmt.Sprintf("%d-%d", r.From, r.To)
}

// ParsePortRanges parses every range of a rule field, naming the bad one.
func ParsePortRanges(ss []string) ([]PortRange, error) {
	out := make([]PortRange, 0, len(ss))
	for _, s := range ss {
		r, err := ParsePortRange(s)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// NSG is an Azure network security group with its custom rules. Default rules
// are not stored; DefaultRules returns them.
type NSG struct {
	ID            string         `json:"id"`
	Name          string         `json:"name"`
	Location      string         `json:"location,omitempty"`
	SecurityRules []SecurityRule `json:"securityRules"`
}

// DefaultRules returns Azure's default NSG rules, which every NSG has and
// nobody can delete: inbound 65000 AllowVnetInBound, 65001
// AllowAzureLoadBalancerInBound, 65500 DenyAllInBound, and the outbound three.
func DefaultRules() []SecurityRule {
	return []SecurityRule{
		{Name: "AllowVnetInBound", Description: "Allow inbound traffic from all VMs in VNET", Priority: 65000, Direction: Inbound, Access: Allow, Protocol: Any,
			SourceAddressPrefix: "VirtualNetwork", SourcePortRange: "*", DestinationAddressPrefix: "VirtualNetwork", DestinationPortRange: "*"},
		{Name: "AllowAzureLoadBalancerInBound", Description: "Allow inbound traffic from azure load balancer", Priority: 65001, Direction: Inbound, Access: Allow, Protocol: Any,
			SourceAddressPrefix: "AzureLoadBalancer", SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "*"},
		{Name: "DenyAllInBound", Description: "Deny all inbound traffic", Priority: 65500, Direction: Inbound, Access: Deny, Protocol: Any,
			SourceAddressPrefix: "*", SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "*"},
		{Name: "AllowVnetOutBound", Description: "Allow outbound traffic from all VMs to all VMs in VNET", Priority: 65000, Direction: Outbound, Access: Allow, Protocol: Any,
			SourceAddressPrefix: "VirtualNetwork", SourcePortRange: "*", DestinationAddressPrefix: "VirtualNetwork", DestinationPortRange: "*"},
		{Name: "AllowInternetOutBound", Description: "Allow outbound traffic from all VMs to Internet", Priority: 65001, Direction: Outbound, Access: Allow, Protocol: Any,
			SourceAddressPrefix: "*", SourcePortRange: "*", DestinationAddressPrefix: "Internet", DestinationPortRange: "*"},
		{Name: "DenyAllOutBound", Description: "Deny all outbound traffic", Priority: 65500, Direction: Outbound, Access: Deny, Protocol: Any,
			SourceAddressPrefix: "*", SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "*"},
	}
}

// SecurityGroup is an AWS EC2 security group: allow-only ingress permissions
// whose union applies to every ENI the group is attached to.
type SecurityGroup struct {
	GroupID       string         `json:"GroupId"`
	GroupName     string         `json:"GroupName"`
	Description   string         `json:"Description,omitempty"`
	VpcID         string         `json:"VpcId,omitempty"`
	IPPermissions []IPPermission `json:"IpPermissions"`

	// Fields `aws ec2 describe-security-groups` prints besides, kept so its
	// output round-trips; egress is not evaluated (JIT is about ingress).
	OwnerID             string         `json:"OwnerId,omitempty"`
	SecurityGroupArn    string         `json:"SecurityGroupArn,omitempty"`
	IPPermissionsEgress []IPPermission `json:"IpPermissionsEgress,omitempty"`
	Tags                []Tag          `json:"Tags,omitempty"`
}

// Tag is an AWS resource tag.
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// UserIDGroupPair is a security-group-referenced source: the ENIs that
// carry that group. It is never an internet source.
type UserIDGroupPair struct {
	GroupID                string `json:"GroupId,omitempty"`
	GroupName              string `json:"GroupName,omitempty"`
	UserID                 string `json:"UserId,omitempty"`
	VpcID                  string `json:"VpcId,omitempty"`
	VpcPeeringConnectionID string `json:"VpcPeeringConnectionId,omitempty"`
	PeeringStatus          string `json:"PeeringStatus,omitempty"`
	Description            string `json:"Description,omitempty"`
}

// PrefixListID is a managed-prefix-list source. Its CIDRs are not in the
// inventory, so evaluation does not count it as an internet source.
type PrefixListID struct {
	PrefixListID string `json:"PrefixListId"`
	Description  string `json:"Description,omitempty"`
}

// IPPermission is one EC2 ingress permission. IPProtocol is "tcp", "udp",
// "icmp" or "-1" (all); with "-1" the ports are ignored (all ports).
type IPPermission struct {
	IPProtocol string      `json:"IpProtocol"`
	FromPort   int         `json:"FromPort"`
	ToPort     int         `json:"ToPort"`
	IPRanges   []IPRange   `json:"IpRanges,omitempty"`
	IPv6Ranges []IPv6Range `json:"Ipv6Ranges,omitempty"`
	// Sources evaluation does not treat as addresses (see the types).
	UserIDGroupPairs []UserIDGroupPair `json:"UserIdGroupPairs,omitempty"`
	PrefixListIDs    []PrefixListID    `json:"PrefixListIds,omitempty"`
}

// IPRange is an IPv4 CIDR source of a permission.
type IPRange struct {
	CidrIP      string `json:"CidrIp"`
	Description string `json:"Description,omitempty"`
}

// IPv6Range is an IPv6 CIDR source of a permission.
type IPv6Range struct {
	CidrIPv6    string `json:"CidrIpv6"`
	Description string `json:"Description,omitempty"`
}

// Ports returns the permission's port range ("-1" means all ports).
func (p IPPermission) Ports() PortRange {
	if p.IPProtocol == "-1" || (p.FromPort == -1 && p.ToPort == -1) {
		return AllPorts
	}
	return PortRange{p.FromPort, p.ToPort}
}

// Protocol maps the EC2 protocol onto the NSG protocol vocabulary.
func (p IPPermission) Protocol() Protocol {
	switch strings.ToLower(p.IPProtocol) {
	case "-1", "all":
		return Any
	case "tcp", "6":
		return Tcp
	case "udp", "17":
		return Udp
	case "icmp", "1", "icmpv6", "58":
		return Icmp
	}
	return Protocol(p.IPProtocol)
}

// EC2Protocol maps an NSG-style protocol onto EC2's IpProtocol.
func EC2Protocol(p Protocol) string {
	switch p {
	case Tcp:
		return "tcp"
	case Udp:
		return "udp"
	case Icmp:
		return "icmp"
	}
	return "-1"
}
