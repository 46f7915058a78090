package aws

import (
	"context"
	"fmt"
	"slices"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// GroupName is the name of a grant's security group.
func GroupName(grantID string) string { return sanitizeDesc(GroupPrefix + grantID) }

// removeUnwanted detaches and deletes drawbridge's groups of this VM that
// no wanted grant uses (expired, revoked, or left by a crash).
func (p *Provider) removeUnwanted(ctx context.Context, v *view) error {
	for _, g := range v.owned {
		if v.wanted(g) {
			continue
		}
		for i := range v.enis {
			e := &v.enis[i]
			if !slices.Contains(e.groups, g.id) {
				continue
			}
			rest := slices.DeleteFunc(slices.Clone(e.groups), func(id string) bool { return id == g.id })
			if len(rest) == 0 {
				return fmt.Errorf("cannot detach %s from %s: it is the interface's only security group", g.id, e.id)
			}
			if err := p.setGroups(ctx, e.id, rest, false); err != nil {
				return err
			}
			e.groups = rest
		}
		if err := p.deleteGroup(ctx, g.id); err != nil {
			return err
		}
	}
	v.owned = slices.DeleteFunc(v.owned, func(g *groupView) bool { return !v.wanted(g) })
	return nil
}

// deleteGroup deletes one of drawbridge's groups. If EC2 still sees it
// attached somewhere (an ENI the inventory does not list), it is detached
// there first.
func (p *Provider) deleteGroup(ctx context.Context, id string) error {
	_, err := p.ec2.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: &id}, retryOn("DependencyViolation"))
	switch errCode(err) {
	case "":
		return nil
	case "InvalidGroup.NotFound":
		return nil // gone already (a retry after a lost response)
	case "DependencyViolation":
	default:
		return fmt.Errorf("delete security group %s: %w", id, err)
	}
	out, derr := p.ec2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{{Name: awssdk.String("group-id"), Values: []string{id}}}})
	if derr != nil {
		return fmt.Errorf("delete security group %s: %w (and finding where it is attached: %v)", id, err, derr)
	}
	for _, n := range out.NetworkInterfaces {
		var rest []string
		for _, g := range n.Groups {
			if awssdk.ToString(g.GroupId) != id {
				rest = append(rest, awssdk.ToString(g.GroupId))
			}
		}
		if len(rest) == 0 {
			return fmt.Errorf("delete security group %s: it is the only group of %s", id, awssdk.ToString(n.NetworkInterfaceId))
		}
		if err := p.setGroups(ctx, awssdk.ToString(n.NetworkInterfaceId), rest, false); err != nil {
			return err
		}
	}
	if _, err := p.ec2.DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: &id}, retryOn("DependencyViolation")); err != nil && errCode(err) != "InvalidGroup.NotFound" {
		return fmt.Errorf("delete security group %s: %w", id, err)
	}
	return nil
}

// ensureGrants creates each wanted grant's group if missing, makes its
// rules exact and attaches it to the primary ENI (final is the primary's
// list without drawbridge's unwanted groups, as primaryGroups computed).
func (p *Provider) ensureGrants(ctx context.Context, v *view, final []string) error {
	if len(v.grants) == 0 {
		return nil
	}
	primary := &v.enis[0]
	fresh := false
	for _, d := range v.grants {
		g := v.grantGroup(d.GrantID)
		created := false
		if g == nil {
			var err error
			if g, err = p.createGrantGroup(ctx, v, d, primary.vpc); err != nil {
				return err
			}
			v.owned = append(v.owned, g)
			created, fresh = true, true
		}
		add, del := diff(g.rules, grantRules(d))
		if err := p.authorize(ctx, g.id, add, created); err != nil {
			return err
		}
		if err := p.revoke(ctx, g.id, del); err != nil {
			return err
		}
		if !slices.Contains(final, g.id) {
			final = append(final, g.id)
		}
	}
	if !slices.Equal(final, primary.groups) {
		if err := p.setGroups(ctx, primary.id, final, fresh); err != nil {
			return err
		}
		primary.groups = final
	}
	// A grant group belongs on the primary ENI only.
	for i := 1; i < len(v.enis); i++ {
		e := &v.enis[i]
		rest := slices.DeleteFunc(slices.Clone(e.groups), func(id string) bool {
			return slices.ContainsFunc(v.owned, func(g *groupView) bool { return g.id == id })
		})
		if len(rest) != len(e.groups) && len(rest) > 0 {
			if err := p.setGroups(ctx, e.id, rest, false); err != nil {
				return err
			}
			e.groups = rest
		}
	}
	return nil
}

func (p *Provider) createGrantGroup(ctx context.Context, v *view, d jit.DesiredGrant, vpc string) (*groupView, error) {
	name := GroupName(d.GrantID)
	tags := map[string]string{TagManagedBy: managedBy, TagVM: vmTag(v.vm.ID), TagGrant: d.GrantID, TagExpires: d.End.UTC().Format(time.RFC3339)}
	var sdkTags []types.Tag
	for _, k := range []string{TagManagedBy, TagVM, TagGrant, TagExpires} {
		sdkTags = append(sdkTags, types.Tag{Key: awssdk.String(k), Value: awssdk.String(tags[k])})
	}
	in := &ec2.CreateSecurityGroupInput{
		GroupName:         &name,
		Description:       awssdk.String(sanitizeDesc("drawbridge JIT access for " + v.name + " (grant " + d.GrantID + ")")),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup, Tags: sdkTags}},
	}
	if vpc != "" {
		in.VpcId = &vpc
	}
	out, err := p.ec2.CreateSecurityGroup(ctx, in)
	if err == nil {
		return &groupView{id: awssdk.ToString(out.GroupId), name: name, vpc: vpc, tags: tags}, nil
	}
	if errCode(err) != "InvalidGroup.Duplicate" {
		return nil, fmt.Errorf("create security group %s: %w", name, err)
	}
	// Created by an attempt whose response was lost, or by a crashed
	// server, but not yet visible under its tags: find it by name.
	filters := []types.Filter{{Name: awssdk.String("group-name"), Values: []string{name}}}
	if vpc != "" {
		filters = append(filters, types.Filter{Name: awssdk.String("vpc-id"), Values: []string{vpc}})
	}
	for attempt := 0; ; attempt++ {
		gs, derr := p.describeGroups(ctx, filters)
		if derr != nil {
			return nil, derr
		}
		if len(gs) == 1 {
			if !gs[0].managed() || gs[0].tags[TagGrant] != d.GrantID {
				return nil, fmt.Errorf("security group %s exists and is not drawbridge's (no %s tag for grant %s)", name, TagGrant, d.GrantID)
			}
			return gs[0], nil
		}
		if attempt == 20 || ctx.Err() != nil {
			return nil, fmt.Errorf("create security group %s: %w, yet it cannot be found", name, err)
		}
		time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond) // eventual consistency
	}
}
