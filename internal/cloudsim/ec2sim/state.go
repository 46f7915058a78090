// Package ec2sim is a wire-compatible Amazon EC2 simulator for tests: an
// http.Handler that speaks EC2's Query protocol (form-encoded
// Action=…&Version=2016-11-15, XML responses, EC2's XML error envelope,
// NextToken pagination) for the calls drawbridge's aws provider and
// discovery make: DescribeInstances, DescribeNetworkInterfaces,
// DescribeSecurityGroups, CreateSecurityGroup, DeleteSecurityGroup,
// AuthorizeSecurityGroupIngress, RevokeSecurityGroupIngress,
// ModifyNetworkInterfaceAttribute and CreateTags.
//
// It owns an in-memory account (security groups as EC2 keeps them, one rule
// per source, ENIs, instances) and injectable faults (throttling with
// RequestLimitExceeded, 500 InternalError before or after the change,
// delayed consistency of new groups). The official SDK reaches it through
// BaseEndpoint with static credentials; every request must carry a SigV4
// Authorization header for the configured access key.
package ec2sim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rule is one ingress rule as EC2 keeps it: one protocol, one port range and
// exactly one source (an IPv4 or IPv6 CIDR, a referenced group or a prefix
// list). Describe groups rules with the same protocol and ports into one
// IpPermission, as EC2 does.
type Rule struct {
	Protocol     string // "tcp", "udp", "icmp", "icmpv6", "-1" or an IP protocol number
	From, To     int32  // -1 where not applicable
	CIDRv4       string
	CIDRv6       string
	GroupID      string
	PrefixListID string
	Description  string
}

// Key identifies a rule the way EC2 does: everything but the description.
func (r Rule) Key() string {
	return fmt.Sprintf("%s|%d|%d|%s|%s|%s|%s", r.Protocol, r.From, r.To, r.CIDRv4, r.CIDRv6, r.GroupID, r.PrefixListID)
}

// Tag is an EC2 resource tag.
type Tag struct{ Key, Value string }

// Group is a VPC security group.
type Group struct {
	ID, Name, Description, VpcID, OwnerID string
	Ingress                               []Rule
	Tags                                  []Tag

	visibleAt time.Time // delayed consistency: unknown to the API before
}

// ENI is an elastic network interface.
type ENI struct {
	ID, SubnetID, VpcID, PrivateIP, PublicIP string
	InstanceID                               string
	DeviceIndex                              int
	Groups                                   []string
	Tags                                     []Tag
}

// Instance is an EC2 instance; its ENIs are listed primary first.
type Instance struct {
	ID, SubnetID, VpcID, PrivateIP, PublicIP, State string
	ENIs                                            []string
	Tags                                            []Tag
}

func tagValue(tags []Tag, k string) (string, bool) {
	for _, t := range tags {
		if t.Key == k {
			return t.Value, true
		}
	}
	return "", false
}

func setTags(tags []Tag, add []Tag) []Tag {
	for _, a := range add {
		if i := slices.IndexFunc(tags, func(t Tag) bool { return t.Key == a.Key }); i >= 0 {
			tags[i].Value = a.Value
		} else {
			tags = append(tags, a)
		}
	}
	return tags
}

// normProtocol canonicalises an IpProtocol as EC2 does: names for the
// protocols that have them, "-1" for all.
func normProtocol(p string) (string, error) {
	switch strings.ToLower(p) {
	case "-1", "all":
		return "-1", nil
	case "tcp", "6":
		return "tcp", nil
	case "udp", "17":
		return "udp", nil
	case "icmp", "1":
		return "icmp", nil
	case "icmpv6", "58":
		return "icmpv6", nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 255 {
		return "", fmt.Errorf("invalid value '%s' for IP protocol. Unknown protocol.", p)
	}
	return strconv.Itoa(n), nil
}

// hasPorts says whether FromPort/ToPort mean something for the protocol.
func hasPorts(proto string) bool {
	switch proto {
	case "tcp", "udp", "icmp", "icmpv6":
		return true
	}
	return false
}

// clone returns a deep copy, so snapshots never alias live state.
func (g *Group) clone() Group {
	c := *g
	c.Ingress = slices.Clone(g.Ingress)
	c.Tags = slices.Clone(g.Tags)
	return c
}

func (e *ENI) clone() ENI {
	c := *e
	c.Groups = slices.Clone(e.Groups)
	c.Tags = slices.Clone(e.Tags)
	return c
}

func (i *Instance) clone() Instance {
	c := *i
	c.ENIs = slices.Clone(i.ENIs)
	c.Tags = slices.Clone(i.Tags)
	return c
}
