package ec2sim

import (
	"encoding/xml"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MaxGroupsPerENI is EC2's default quota of security groups per interface.
const MaxGroupsPerENI = 5

func ret(action string) *returnResponse {
	return &returnResponse{XMLName: xml.Name{Local: action + "Response"}, Xmlns: xmlns, Return: true}
}

func (s *Server) createSecurityGroup(q params) (any, *apiError) {
	name, desc, vpc := q.get("GroupName"), q.get("GroupDescription"), q.get("VpcId")
	switch {
	case name == "":
		return nil, errf(400, "MissingParameter", "The request must contain the parameter groupName")
	case desc == "":
		return nil, errf(400, "MissingParameter", "The request must contain the parameter groupDescription")
	case len(name) > 255 || len(desc) > 255:
		return nil, badParam("Value for parameter groupName or groupDescription is longer than 255 characters")
	case strings.HasPrefix(strings.ToLower(name), "sg-"):
		return nil, badParam("Group names may not be in the format sg-*")
	}
	for _, g := range s.groups {
		if g.Name == name && g.VpcID == vpc {
			return nil, errf(400, "InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", name, vpc)
		}
	}
	var tags []Tag
	for _, ts := range q.sub("TagSpecification") {
		if rt := ts.get("ResourceType"); rt != "security-group" {
			return nil, badParam("'%s' is not a valid taggable resource type for this operation.", rt)
		}
		tags = setTags(tags, ts.tags("Tag"))
	}
	g := &Group{ID: s.newID("sg"), Name: name, Description: desc, VpcID: vpc, OwnerID: s.opts.AccountID, Tags: tags,
		visibleAt: time.Now().Add(s.faults.ConsistencyDelay)}
	s.groups[g.ID] = g
	return &createSecurityGroupResponse{Xmlns: xmlns, Return: true, GroupID: g.ID, Tags: xmlTags(tags)}, nil
}

func (s *Server) deleteSecurityGroup(q params) (any, *apiError) {
	id := q.get("GroupId")
	if id == "" {
		return nil, errf(400, "MissingParameter", "The request must contain the parameter groupId")
	}
	g, e := s.group(id)
	if e != nil {
		return nil, e
	}
	for _, eni := range s.enis {
		if slices.Contains(eni.Groups, id) {
			return nil, errf(400, "DependencyViolation", "resource %s has a dependent object", id)
		}
	}
	for _, o := range s.groups {
		for _, r := range o.Ingress {
			if r.GroupID == id && o.ID != id {
				return nil, errf(400, "DependencyViolation", "resource %s has a dependent object", id)
			}
		}
	}
	delete(s.groups, g.ID)
	r := ret("DeleteSecurityGroup")
	r.GroupID = id
	return r, nil
}

// rules reads the IpPermissions.N (or the legacy top-level CidrIp form) of
// an Authorize or Revoke call as one Rule per source.
func (s *Server) rules(q params) ([]Rule, *apiError) {
	perms := q.sub("IpPermissions")
	if len(perms) == 0 && q.get("IpProtocol") != "" {
		legacy := params{"IpProtocol": {q.get("IpProtocol")}, "FromPort": {q.get("FromPort")}, "ToPort": {q.get("ToPort")}}
		if c := q.get("CidrIp"); c != "" {
			legacy["IpRanges.1.CidrIp"] = []string{c}
		}
		perms = []params{legacy}
	}
	if len(perms) == 0 {
		return nil, errf(400, "MissingParameter", "No IpPermissions given")
	}
	var out []Rule
	for i, p := range perms {
		proto, err := normProtocol(p.get("IpProtocol"))
		if err != nil {
			return nil, badParam("IpPermissions.%d: %v", i+1, err)
		}
		base := Rule{Protocol: proto, From: -1, To: -1}
		if hasPorts(proto) {
			from, err1 := strconv.Atoi(p.get("FromPort"))
			to, err2 := strconv.Atoi(p.get("ToPort"))
			if err1 != nil || err2 != nil {
				return nil, badParam("IpPermissions.%d: FromPort and ToPort are required for protocol %s", i+1, proto)
			}
			lo := 0
			if proto == "icmp" || proto == "icmpv6" {
				lo = -1
			}
			if from < lo || to < lo || from > 65535 || to > 65535 || (lo == 0 && from > to) {
				return nil, badParam("Invalid value for portRange. Must not be greater than 65535 and from must not be greater than to (%d-%d)", from, to)
			}
			base.From, base.To = int32(from), int32(to)
		}
		n := len(out)
		for _, r := range p.sub("IpRanges") {
			pr, err := netip.ParsePrefix(r.get("CidrIp"))
			if err != nil || !pr.Addr().Is4() {
				return nil, badParam("CIDR block %s is malformed", r.get("CidrIp"))
			}
			x := base
			x.CIDRv4, x.Description = pr.Masked().String(), r.get("Description")
			out = append(out, x)
		}
		for _, r := range p.sub("Ipv6Ranges") {
			pr, err := netip.ParsePrefix(r.get("CidrIpv6"))
			if err != nil || !pr.Addr().Is6() {
				return nil, badParam("CIDR block %s is malformed", r.get("CidrIpv6"))
			}
			x := base
			x.CIDRv6, x.Description = pr.Masked().String(), r.get("Description")
			out = append(out, x)
		}
		for _, r := range p.sub("Groups") {
			ref := r.get("GroupId")
			if _, e := s.group(ref); e != nil {
				return nil, e
			}
			x := base
			x.GroupID, x.Description = ref, r.get("Description")
			out = append(out, x)
		}
		for _, r := range p.sub("PrefixListIds") {
			x := base
			x.PrefixListID, x.Description = r.get("PrefixListId"), r.get("Description")
			if !strings.HasPrefix(x.PrefixListID, "pl-") {
				return nil, errf(400, "InvalidPrefixListId.Malformed", "The prefix list ID '%s' is malformed", x.PrefixListID)
			}
			out = append(out, x)
		}
		if len(out) == n {
			return nil, badParam("IpPermissions.%d names no source (IpRanges, Ipv6Ranges, Groups or PrefixListIds)", i+1)
		}
	}
	return out, nil
}

func describeRule(r Rule) string {
	src := r.CIDRv4 + r.CIDRv6 + r.GroupID + r.PrefixListID
	return fmt.Sprintf("peer: %s, %s, from port: %d, to port: %d, ALLOW", src, strings.ToUpper(r.Protocol), r.From, r.To)
}

func (s *Server) authorizeIngress(q params) (any, *apiError) {
	g, e := s.group(q.get("GroupId"))
	if e != nil {
		return nil, e
	}
	rs, e := s.rules(q)
	if e != nil {
		return nil, e
	}
	have := map[string]bool{}
	for _, r := range g.Ingress {
		have[r.Key()] = true
	}
	for _, r := range rs {
		if have[r.Key()] {
			return nil, errf(400, "InvalidPermission.Duplicate", "the specified rule \"%s\" already exists", describeRule(r))
		}
		have[r.Key()] = true
	}
	if q := s.opts.RulesPerGroup; q > 0 {
		v4, v6 := 0, 0
		for _, r := range append(slices.Clone(g.Ingress), rs...) {
			if r.CIDRv6 != "" {
				v6++
			} else {
				v4++
			}
		}
		if v4 > q || v6 > q {
			return nil, errf(400, "RulesPerSecurityGroupLimitExceeded", "The maximum number of rules per security group has been reached.")
		}
	}
	resp := &authorizeResponse{Xmlns: xmlns, Return: true}
	for _, r := range rs {
		g.Ingress = append(g.Ingress, r)
		resp.Rules = append(resp.Rules, xmlRule{RuleID: s.newID("sgr"), GroupID: g.ID, OwnerID: s.opts.AccountID,
			IPProtocol: r.Protocol, FromPort: r.From, ToPort: r.To, CidrIPv4: r.CIDRv4, CidrIPv6: r.CIDRv6, PrefixList: r.PrefixListID, Desc: r.Description})
	}
	return resp, nil
}

// revokeIngress removes the named rules. Rules that do not exist are
// reported in unknownIpPermissionSet; if none exists the call fails with
// InvalidPermission.NotFound and nothing changes.
func (s *Server) revokeIngress(q params) (any, *apiError) {
	g, e := s.group(q.get("GroupId"))
	if e != nil {
		return nil, e
	}
	rs, e := s.rules(q)
	if e != nil {
		return nil, e
	}
	var unknown []Rule
	drop := map[string]bool{}
	for _, r := range rs {
		if slices.ContainsFunc(g.Ingress, func(x Rule) bool { return x.Key() == r.Key() }) {
			drop[r.Key()] = true
		} else {
			unknown = append(unknown, r)
		}
	}
	if len(drop) == 0 {
		return nil, errf(400, "InvalidPermission.NotFound", "The specified rule does not exist in this security group.")
	}
	g.Ingress = slices.DeleteFunc(g.Ingress, func(x Rule) bool { return drop[x.Key()] })
	return &revokeResponse{Xmlns: xmlns, Return: true, Unknown: permissions(s.opts.AccountID, unknown)}, nil
}

func (s *Server) modifyNetworkInterface(q params) (any, *apiError) {
	id := q.get("NetworkInterfaceId")
	eni := s.enis[id]
	if eni == nil {
		return nil, errf(400, "InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", id)
	}
	groups := q.list("SecurityGroupId")
	if len(groups) == 0 {
		return nil, errf(400, "MissingParameter", "The request must contain a security group or another attribute to modify")
	}
	if len(groups) > MaxGroupsPerENI {
		return nil, errf(400, "SecurityGroupsPerInterfaceLimitExceeded", "The maximum number of security groups per interface has been reached.")
	}
	for _, gid := range groups {
		g, e := s.group(gid)
		if e != nil {
			return nil, e
		}
		if g.VpcID != eni.VpcID {
			return nil, errf(400, "InvalidParameter", "Security group %s and interface %s belong to different networks.", gid, id)
		}
	}
	eni.Groups = slices.Compact(slices.Clone(groups))
	return ret("ModifyNetworkInterfaceAttribute"), nil
}

func (s *Server) createTags(q params) (any, *apiError) {
	ids := q.list("ResourceId")
	tags := q.tags("Tag")
	if len(ids) == 0 || len(tags) == 0 {
		return nil, errf(400, "MissingParameter", "The request must contain the parameters resourceIdSet and tagSet")
	}
	var targets []*[]Tag
	for _, id := range ids {
		switch {
		case strings.HasPrefix(id, "sg-"):
			g, e := s.group(id)
			if e != nil {
				return nil, e
			}
			targets = append(targets, &g.Tags)
		case strings.HasPrefix(id, "eni-") && s.enis[id] != nil:
			targets = append(targets, &s.enis[id].Tags)
		case strings.HasPrefix(id, "i-") && s.instances[id] != nil:
			targets = append(targets, &s.instances[id].Tags)
		default:
			return nil, errf(400, "InvalidID", "The ID '%s' is not valid", id)
		}
	}
	for _, t := range targets {
		*t = setTags(*t, tags)
	}
	return ret("CreateTags"), nil
}
