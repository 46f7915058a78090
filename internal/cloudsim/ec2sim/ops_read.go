package ec2sim

import (
	"encoding/base64"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// group returns a visible group; s.mu is held.
func (s *Server) group(id string) (*Group, *apiError) {
	g := s.groups[id]
	if g == nil || time.Now().Before(g.visibleAt) {
		return nil, errf(400, "InvalidGroup.NotFound", "The security group '%s' does not exist", id)
	}
	return g, nil
}

// filter is one Filter.N of a Describe call.
type filter struct {
	name   string
	values []string
}

func filters(q params) []filter {
	var out []filter
	for _, f := range q.sub("Filter") {
		out = append(out, filter{f.get("Name"), f.list("Value")})
	}
	return out
}

// matches reports whether a resource passes every filter: some value of
// each filter matches (EC2 wildcards * and ?) one of the resource's values
// for that name. fields returns nil, false for a filter name it does not know.
func matches(fs []filter, fields func(name string) ([]string, bool)) (bool, *apiError) {
	for _, f := range fs {
		have, ok := fields(f.name)
		if !ok {
			return false, badParam("The filter '%s' is invalid", f.name)
		}
		hit := false
		for _, want := range f.values {
			for _, h := range have {
				if m, _ := path.Match(want, h); m {
					hit = true
				}
			}
		}
		if !hit {
			return false, nil
		}
	}
	return true, nil
}

func tagFields(tags []Tag, name string) ([]string, bool) {
	if k, ok := strings.CutPrefix(name, "tag:"); ok {
		if v, ok := tagValue(tags, k); ok {
			return []string{v}, true
		}
		return nil, true
	}
	if name == "tag-key" {
		var out []string
		for _, t := range tags {
			out = append(out, t.Key)
		}
		return out, true
	}
	return nil, false
}

// page returns the [start, end) slice of n items a request asks for, and the
// next token ("" at the end). Without MaxResults every item is returned.
func page(q params, n int) (int, int, string, *apiError) {
	start := 0
	if t := q.get("NextToken"); t != "" {
		b, err := base64.RawURLEncoding.DecodeString(t)
		i, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
		if err != nil || err2 != nil || i < 0 || i > n {
			return 0, 0, "", badParam("The token '%s' is invalid.", t)
		}
		start = i
	}
	end := n
	if m := q.get("MaxResults"); m != "" {
		k, err := strconv.Atoi(m)
		if err != nil || k < 5 || k > 1000 {
			return 0, 0, "", badParam("Value ( %s ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.", m)
		}
		end = min(n, start+k)
	}
	next := ""
	if end < n {
		next = base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(end)))
	}
	return start, end, next, nil
}

func sortedKeys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (s *Server) describeSecurityGroups(q params) (any, *apiError) {
	ids := q.list("GroupId")
	names := q.list("GroupName")
	fs := filters(q)
	var sel []*Group
	if len(ids) > 0 {
		for _, id := range ids {
			g, e := s.group(id)
			if e != nil {
				return nil, e
			}
			sel = append(sel, g)
		}
	} else {
		for _, id := range sortedKeys(s.groups) {
			if g, e := s.group(id); e == nil {
				sel = append(sel, g)
			}
		}
	}
	var hit []*Group
	for _, g := range sel {
		if len(names) > 0 && !contains(names, g.Name) {
			continue
		}
		ok, e := matches(fs, func(name string) ([]string, bool) {
			switch name {
			case "group-id":
				return []string{g.ID}, true
			case "group-name":
				return []string{g.Name}, true
			case "vpc-id":
				return []string{g.VpcID}, true
			case "description":
				return []string{g.Description}, true
			}
			return tagFields(g.Tags, name)
		})
		if e != nil {
			return nil, e
		}
		if ok {
			hit = append(hit, g)
		}
	}
	start, end, next, e := page(q, len(hit))
	if e != nil {
		return nil, e
	}
	out := make([]xmlSecurityGroup, 0, end-start)
	for _, g := range hit[start:end] {
		out = append(out, s.xmlGroup(g))
	}
	return &describeSecurityGroupsResponse{Xmlns: xmlns, Groups: out, NextToken: next}, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Server) xmlGroup(g *Group) xmlSecurityGroup {
	return xmlSecurityGroup{
		OwnerID: s.opts.AccountID, GroupID: g.ID, GroupName: g.Name, GroupDescription: g.Description,
		IPPermissions:    permissions(s.opts.AccountID, g.Ingress),
		IPPermsEgress:    []xmlPermission{{IPProtocol: "-1", IPRanges: []xmlIPRange{{CidrIP: "0.0.0.0/0"}}}},
		VpcID:            g.VpcID,
		SecurityGroupArn: "arn:aws:ec2:" + s.region() + ":" + s.opts.AccountID + ":security-group/" + g.ID,
		Tags:             xmlTags(g.Tags),
	}
}

func (s *Server) region() string {
	if s.opts.Region == "" {
		return "us-east-1"
	}
	return s.opts.Region
}

func (s *Server) groupRefs(ids []string) []xmlGroupRef {
	out := []xmlGroupRef{}
	for _, id := range ids {
		name := ""
		if g := s.groups[id]; g != nil {
			name = g.Name
		}
		out = append(out, xmlGroupRef{id, name})
	}
	return out
}

func (s *Server) xmlENI(e *ENI) xmlNetworkInterface {
	x := xmlNetworkInterface{
		NetworkInterfaceID: e.ID, SubnetID: e.SubnetID, VpcID: e.VpcID, OwnerID: s.opts.AccountID,
		Status: "available", InterfaceType: "interface", PrivateIPAddress: e.PrivateIP, SourceDestCheck: true,
		Groups: s.groupRefs(e.Groups), Tags: xmlTags(e.Tags),
	}
	if e.PrivateIP != "" {
		x.PrivateIPs = []xmlPrivateIP{{e.PrivateIP, true}}
	}
	if e.InstanceID != "" {
		x.Status = "in-use"
		x.Attachment = &xmlAttachment{AttachmentID: "eni-attach-" + strings.TrimPrefix(e.ID, "eni-"), InstanceID: e.InstanceID, DeviceIndex: e.DeviceIndex, Status: "attached"}
	}
	if e.PublicIP != "" {
		x.Association = &xmlAssociation{e.PublicIP}
	}
	return x
}

func (s *Server) describeNetworkInterfaces(q params) (any, *apiError) {
	ids := q.list("NetworkInterfaceId")
	fs := filters(q)
	keys := ids
	if len(keys) == 0 {
		keys = sortedKeys(s.enis)
	}
	var hit []*ENI
	for _, id := range keys {
		e := s.enis[id]
		if e == nil {
			return nil, errf(400, "InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", id)
		}
		ok, err := matches(fs, func(name string) ([]string, bool) {
			switch name {
			case "network-interface-id":
				return []string{e.ID}, true
			case "attachment.instance-id":
				return []string{e.InstanceID}, true
			case "group-id":
				return e.Groups, true
			case "vpc-id":
				return []string{e.VpcID}, true
			case "subnet-id":
				return []string{e.SubnetID}, true
			}
			return tagFields(e.Tags, name)
		})
		if err != nil {
			return nil, err
		}
		if ok {
			hit = append(hit, e)
		}
	}
	start, end, next, e := page(q, len(hit))
	if e != nil {
		return nil, e
	}
	out := make([]xmlNetworkInterface, 0, end-start)
	for _, x := range hit[start:end] {
		out = append(out, s.xmlENI(x))
	}
	return &describeNetworkInterfacesResponse{Xmlns: xmlns, Interfaces: out, NextToken: next}, nil
}

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

func (s *Server) describeInstances(q params) (any, *apiError) {
	ids := q.list("InstanceId")
	fs := filters(q)
	keys := ids
	if len(keys) == 0 {
		keys = sortedKeys(s.instances)
	}
	var hit []*Instance
	for _, id := range keys {
		in := s.instances[id]
		if in == nil {
			return nil, errf(400, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
		ok, err := matches(fs, func(name string) ([]string, bool) {
			switch name {
			case "instance-id":
				return []string{in.ID}, true
			case "instance-state-name":
				return []string{in.State}, true
			case "vpc-id":
				return []string{in.VpcID}, true
			}
			return tagFields(in.Tags, name)
		})
		if err != nil {
			return nil, err
		}
		if ok {
			hit = append(hit, in)
		}
	}
	start, end, next, e := page(q, len(hit))
	if e != nil {
		return nil, e
	}
	out := make([]xmlReservation, 0, end-start)
	for _, x := range hit[start:end] {
		out = append(out, s.xmlReservation(x))
	}
	return &describeInstancesResponse{Xmlns: xmlns, Reservations: out, NextToken: next}, nil
}

func (s *Server) xmlReservation(in *Instance) xmlReservation {
	x := xmlInstance{InstanceID: in.ID, ImageID: "ami-0123456789abcdef0", State: xmlInstanceState{stateCodes[in.State], in.State},
		InstanceType: "t3.micro", Placement: xmlPlacement{s.region() + "a"}, PrivateIPAddress: in.PrivateIP, IPAddress: in.PublicIP, SubnetID: in.SubnetID, VpcID: in.VpcID,
		Groups: []xmlGroupRef{}, Tags: xmlTags(in.Tags)}
	for i, id := range in.ENIs {
		e := s.enis[id]
		if e == nil {
			continue
		}
		ni := xmlInstanceNI{NetworkInterfaceID: e.ID, SubnetID: e.SubnetID, VpcID: e.VpcID, OwnerID: s.opts.AccountID,
			Status: "in-use", PrivateIPAddress: e.PrivateIP, Groups: s.groupRefs(e.Groups),
			Attachment: &xmlAttachment{AttachmentID: "eni-attach-" + strings.TrimPrefix(e.ID, "eni-"), DeviceIndex: e.DeviceIndex, Status: "attached"}}
		if e.PublicIP != "" {
			ni.Association = &xmlAssociation{e.PublicIP}
		}
		x.Interfaces = append(x.Interfaces, ni)
		if i == 0 {
			x.Groups = s.groupRefs(e.Groups)
		}
	}
	return xmlReservation{ReservationID: "r-" + strings.TrimPrefix(in.ID, "i-"), OwnerID: s.opts.AccountID, Instances: []xmlInstance{x}}
}
