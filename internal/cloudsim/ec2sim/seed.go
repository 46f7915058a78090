package ec2sim

import (
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// Seed adds an inventory's AWS objects to the account: its security
// groups, ENIs and the instances of its AWS VMs. Each ENI is put in the VPC
// of its first group that names one.
func (s *Server) Seed(inv inventory.Inventory) {
	vpcOf := map[string]string{}
	for _, g := range inv.SecurityGroups {
		vpc := g.VpcID
		if vpc == "" {
			vpc = "vpc-0default"
		}
		vpcOf[g.GroupID] = vpc
		s.PutGroup(Group{ID: g.GroupID, Name: g.GroupName, Description: orDefault(g.Description, g.GroupName), VpcID: vpc, Ingress: RulesOf(g.IPPermissions), Tags: tagsOf(g.Tags)})
	}
	owner := map[string]string{}
	index := map[string]int{}
	for _, vm := range inv.VMs {
		if vm.Cloud != inventory.AWS || vm.InstanceID == "" {
			continue
		}
		for i, e := range vm.ENIs {
			owner[inventory.Key(e)], index[inventory.Key(e)] = vm.InstanceID, i
		}
	}
	enis := map[string]ENI{}
	for _, e := range inv.ENIs {
		x := ENI{ID: e.ID, SubnetID: orDefault(e.SubnetID, "subnet-0default"), InstanceID: owner[inventory.Key(e.ID)], DeviceIndex: index[inventory.Key(e.ID)], Groups: e.SecurityGroups}
		if len(e.PrivateIPs) > 0 {
			x.PrivateIP = e.PrivateIPs[0].String()
		}
		if e.PublicIP.IsValid() {
			x.PublicIP = e.PublicIP.String()
		}
		for _, g := range e.SecurityGroups {
			if x.VpcID == "" {
				x.VpcID = vpcOf[g]
			}
		}
		enis[inventory.Key(e.ID)] = x
		s.PutENI(x)
	}
	for _, vm := range inv.VMs {
		if vm.Cloud != inventory.AWS || vm.InstanceID == "" {
			continue
		}
		in := Instance{ID: vm.InstanceID, ENIs: vm.ENIs, Tags: []Tag{{"Name", vm.Name}}}
		if len(vm.ENIs) > 0 {
			p := enis[inventory.Key(vm.ENIs[0])]
			in.SubnetID, in.VpcID, in.PrivateIP, in.PublicIP = p.SubnetID, p.VpcID, p.PrivateIP, p.PublicIP
		}
		s.PutInstance(in)
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func tagsOf(ts []netrule.Tag) []Tag {
	var out []Tag
	for _, t := range ts {
		out = append(out, Tag{t.Key, t.Value})
	}
	return out
}

// RulesOf splits netrule permissions into one rule per source.
func RulesOf(perms []netrule.IPPermission) []Rule {
	var out []Rule
	for _, p := range perms {
		proto, err := normProtocol(p.IPProtocol)
		if err != nil {
			continue
		}
		base := Rule{Protocol: proto, From: -1, To: -1}
		if hasPorts(proto) {
			base.From, base.To = int32(p.FromPort), int32(p.ToPort)
		}
		for _, r := range p.IPRanges {
			x := base
			x.CIDRv4, x.Description = strings.TrimSpace(r.CidrIP), r.Description
			out = append(out, x)
		}
		for _, r := range p.IPv6Ranges {
			x := base
			x.CIDRv6, x.Description = strings.TrimSpace(r.CidrIPv6), r.Description
			out = append(out, x)
		}
		for _, r := range p.UserIDGroupPairs {
			x := base
			x.GroupID, x.Description = r.GroupID, r.Description
			out = append(out, x)
		}
		for _, r := range p.PrefixListIDs {
			x := base
			x.PrefixListID, x.Description = r.PrefixListID, r.Description
			out = append(out, x)
		}
	}
	return out
}
