package sim

import (
	"fmt"
	"slices"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// reconcileGrantGroups makes one security group per grant exist and be
// attached to the primary ENI, and removes (detaches and deletes) the VM's
// grant groups no grant wants any more, including unattached ones.
func (s *session) reconcileGrantGroups(vm inventory.VM, name string, enis []*inventory.ENI, grants []jit.DesiredGrant) error {
	want := map[string]jit.DesiredGrant{}
	for _, g := range grants {
		want[inventory.Key(GrantGroupID(g.GrantID))] = g
	}
	for k := range want {
		s.newFP.GrantGroups = append(s.newFP.GrantGroups, k)
	}
	if err := s.deleteUnwantedGrantGroups(vm, want); err != nil {
		return err
	}
	if err := s.detachMissingGrantGroups(enis, want); err != nil {
		return err
	}
	if len(grants) == 0 {
		return nil
	}
	return s.attachGrantGroups(vm, name, enis, grants)
}

// deleteUnwantedGrantGroups deletes this VM's grant groups that no grant
// in want needs.
func (s *session) deleteUnwantedGrantGroups(vm inventory.VM, want map[string]jit.DesiredGrant) error {
	keys, err := s.candidates(inventory.KindSecurityGroup, func(f *Footprint) []string { return f.GrantGroups })
	if err != nil {
		return err
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, GrantGroupPrefix) {
			continue
		}
		sg, err := get[netrule.SecurityGroup](s, inventory.KindSecurityGroup, k)
		if err != nil {
			return err
		}
		if sg == nil || want[k].GrantID != "" {
			continue
		}
		grantID := strings.TrimPrefix(sg.GroupName, RulePrefix)
		if sg.Description == grantGroupDescription(vm.ID, grantID) {
			s.del(inventory.KindSecurityGroup, k)
		}
	}
	return nil
}

// detachMissingGrantGroups detaches what is not wanted and no longer
// exists (deleted above, or a dangling reference); another VM's grant
// group is left alone.
func (s *session) detachMissingGrantGroups(enis []*inventory.ENI, want map[string]jit.DesiredGrant) error {
	for _, eni := range enis {
		n := len(eni.SecurityGroups)
		var dropErr error
		eni.SecurityGroups = slices.DeleteFunc(eni.SecurityGroups, func(id string) bool {
			k := inventory.Key(id)
			if !strings.HasPrefix(k, GrantGroupPrefix) || want[k].GrantID != "" {
				return false
			}
			sg, err := get[netrule.SecurityGroup](s, inventory.KindSecurityGroup, id)
			if err != nil {
				dropErr = err
				return false
			}
			return sg == nil
		})
		if dropErr != nil {
			return dropErr
		}
		if len(eni.SecurityGroups) == 0 && n > 0 {
			eni.SecurityGroups = nil
		}
	}
	return nil
}

// attachGrantGroups writes each grant's group and attaches it to the
// primary ENI only.
func (s *session) attachGrantGroups(vm inventory.VM, name string, enis []*inventory.ENI, grants []jit.DesiredGrant) error {
	primary := enis[0] // grants imply guarded ports, so every ENI was found
	vpc, err := s.vpcOf(primary)
	if err != nil {
		return err
	}
	for _, g := range grants {
		id := GrantGroupID(g.GrantID)
		wantSG := grantGroup(vm, g, vpc)
		cur, err := get[netrule.SecurityGroup](s, inventory.KindSecurityGroup, id)
		if err != nil {
			return err
		}
		if cur == nil || !jsonEqual(cur, &wantSG) {
			s.put(inventory.KindSecurityGroup, id, &wantSG)
		}
		// Attached to the primary ENI only.
		for _, eni := range enis[1:] {
			eni.SecurityGroups = slices.DeleteFunc(eni.SecurityGroups, func(x string) bool { return strings.EqualFold(x, id) })
		}
		if slices.ContainsFunc(primary.SecurityGroups, func(x string) bool { return strings.EqualFold(x, id) }) {
			continue
		}
		if n := len(primary.SecurityGroups); n >= inventory.MaxSecurityGroupsPerENI {
			return fmt.Errorf("%s has no free security group slot (%d of %d used) for the JIT security group of grant %s on instance %s: %w",
				primary.ID, n, inventory.MaxSecurityGroupsPerENI, g.GrantID, name, ErrNoRoom)
		}
		primary.SecurityGroups = append(primary.SecurityGroups, id)
	}
	return nil
}

// vpcOf is the VPC of the ENI's first user security group that names one,
// so a grant group lives where the instance does.
func (s *session) vpcOf(eni *inventory.ENI) (string, error) {
	for _, id := range eni.SecurityGroups {
		if strings.HasPrefix(inventory.Key(id), GrantGroupPrefix) {
			continue
		}
		sg, err := get[netrule.SecurityGroup](s, inventory.KindSecurityGroup, id)
		if err != nil {
			return "", err
		}
		if sg != nil && sg.VpcID != "" {
			return sg.VpcID, nil
		}
	}
	return "", nil
}

func grantGroup(vm inventory.VM, g jit.DesiredGrant, vpc string) netrule.SecurityGroup {
	var v4 []netrule.IPRange
	var v6 []netrule.IPv6Range
	desc := "drawbridge JIT grant " + g.GrantID + " until " + g.End.UTC().Format("2006-01-02T15:04:05Z")
	switch {
	case g.Source.IsAny():
		v4 = []netrule.IPRange{{CidrIP: "0.0.0.0/0", Description: desc}}
		v6 = []netrule.IPv6Range{{CidrIPv6: "::/0", Description: desc}}
	case g.Source.Prefix().Addr().Is4():
		v4 = []netrule.IPRange{{CidrIP: g.Source.Prefix().String(), Description: desc}}
	default:
		v6 = []netrule.IPv6Range{{CidrIPv6: g.Source.Prefix().String(), Description: desc}}
	}
	var perms []netrule.IPPermission
	for _, proto := range g.Protocol.EC2Protocols() {
		perms = append(perms, netrule.IPPermission{IPProtocol: proto, FromPort: g.Port, ToPort: g.Port, IPRanges: v4, IPv6Ranges: v6})
	}
	return netrule.SecurityGroup{
		GroupID:       GrantGroupID(g.GrantID),
		GroupName:     GrantGroupName(g.GrantID),
		Description:   grantGroupDescription(vm.ID, g.GrantID),
		VpcID:         vpc,
		IPPermissions: perms,
	}
}
