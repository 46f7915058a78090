package aws

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/drawbridge/drawbridge/internal/inventory"
)

// vmTag is the drawbridge:vm tag value of a VM: its key, or, past EC2's 256
// characters, a prefix and a hash that keep it unique.
func vmTag(vmID string) string {
	k := inventory.Key(vmID)
	if len(k) <= 256 {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return k[:256-17] + "#" + hex.EncodeToString(sum[:8])
}

// errCode is the EC2 error code of err, or "".
func errCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// retryOn makes one call also retry the given error codes: EC2 is
// eventually consistent, so a group just created may be "not found" and a
// group just detached may still have a "dependent object" for a moment.
func retryOn(codes ...string) func(*ec2.Options) {
	return func(o *ec2.Options) { o.Retryer = retry.AddWithErrorCodes(o.Retryer, codes...) }
}

// describeENIs returns the instance's ENIs, primary first: the ones the
// inventory names, or else those attached to the instance ID. A missing
// ENI is an error only when JIT must revoke from it (needed).
func (p *Provider) describeENIs(ctx context.Context, vm inventory.VM, needed bool) ([]eniView, error) {
	in := &ec2.DescribeNetworkInterfacesInput{}
	switch {
	case len(vm.ENIs) > 0:
		in.Filters = []types.Filter{{Name: awssdk.String("network-interface-id"), Values: vm.ENIs}}
	case vm.InstanceID != "":
		in.Filters = []types.Filter{{Name: awssdk.String("attachment.instance-id"), Values: []string{vm.InstanceID}}}
	default:
		return nil, nil
	}
	type found struct {
		eniView
		index int32
	}
	var all []found
	pg := ec2.NewDescribeNetworkInterfacesPaginator(p.ec2, in)
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe network interfaces of %s: %w", vm.ID, err)
		}
		for _, n := range out.NetworkInterfaces {
			f := found{eniView: eniView{id: awssdk.ToString(n.NetworkInterfaceId), vpc: awssdk.ToString(n.VpcId)}}
			for _, g := range n.Groups {
				f.groups = append(f.groups, awssdk.ToString(g.GroupId))
			}
			if n.Attachment != nil {
				f.index = awssdk.ToInt32(n.Attachment.DeviceIndex)
			}
			all = append(all, f)
		}
	}
	var out []eniView
	if len(vm.ENIs) > 0 {
		for i, id := range vm.ENIs {
			j := -1
			for k := range all {
				if all[k].id == id {
					j = k
				}
			}
			if j < 0 {
				if needed {
					return nil, fmt.Errorf("instance %s: enis[%d]: network interface %s not found: %w", vm.ID, i, id, ErrInventory)
				}
				continue
			}
			out = append(out, all[j].eniView)
		}
		return out, nil
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].index < all[j].index })
	for _, f := range all {
		out = append(out, f.eniView)
	}
	return out, nil
}

// describeGroups lists the groups matching filters (filters never fail on
// a group that does not exist).
func (p *Provider) describeGroups(ctx context.Context, filters []types.Filter) ([]*groupView, error) {
	var out []*groupView
	pg := ec2.NewDescribeSecurityGroupsPaginator(p.ec2, &ec2.DescribeSecurityGroupsInput{Filters: filters, MaxResults: awssdk.Int32(1000)})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe security groups: %w", err)
		}
		for _, g := range page.SecurityGroups {
			out = append(out, toGroupView(g))
		}
	}
	return out, nil
}

func toGroupView(g types.SecurityGroup) *groupView {
	v := &groupView{id: awssdk.ToString(g.GroupId), name: awssdk.ToString(g.GroupName), vpc: awssdk.ToString(g.VpcId),
		rules: fromSDK(g.IpPermissions), tags: map[string]string{}}
	for _, t := range g.Tags {
		v.tags[awssdk.ToString(t.Key)] = awssdk.ToString(t.Value)
	}
	return v
}

// authorize adds rules to a group. A rule that is there already (a retry
// after a lost response, or a concurrent reconcile) is not an error; EC2
// refuses the whole batch then, so it is retried rule by rule.
func (p *Provider) authorize(ctx context.Context, groupID string, rules []Rule, fresh bool) error {
	if len(rules) == 0 {
		return nil
	}
	var opts []func(*ec2.Options)
	if fresh {
		opts = append(opts, retryOn("InvalidGroup.NotFound"))
	}
	_, err := p.ec2.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: &groupID, IpPermissions: toSDK(rules)}, opts...)
	if errCode(err) == "InvalidPermission.Duplicate" && len(rules) > 1 {
		for _, r := range rules {
			if err := p.authorize(ctx, groupID, []Rule{r}, fresh); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil && errCode(err) != "InvalidPermission.Duplicate" {
		return fmt.Errorf("authorize ingress on %s: %w", groupID, err)
	}
	return nil
}

// revoke removes rules from a group; rules already gone are not an error.
func (p *Provider) revoke(ctx context.Context, groupID string, rules []Rule) error {
	if len(rules) == 0 {
		return nil
	}
	_, err := p.ec2.RevokeSecurityGroupIngress(ctx, &ec2.RevokeSecurityGroupIngressInput{GroupId: &groupID, IpPermissions: toSDK(rules)})
	if err != nil && errCode(err) != "InvalidPermission.NotFound" && errCode(err) != "InvalidGroup.NotFound" {
		return fmt.Errorf("revoke ingress on %s: %w", groupID, err)
	}
	return nil
}

// setGroups replaces an ENI's security groups.
func (p *Provider) setGroups(ctx context.Context, eniID string, groups []string, fresh bool) error {
	var opts []func(*ec2.Options)
	if fresh {
		opts = append(opts, retryOn("InvalidGroup.NotFound"))
	}
	_, err := p.ec2.ModifyNetworkInterfaceAttribute(ctx, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &eniID, Groups: groups}, opts...)
	if err != nil {
		return fmt.Errorf("set security groups of %s: %w", eniID, err)
	}
	return nil
}

func groupFilter(ids ...string) []types.Filter {
	return []types.Filter{{Name: awssdk.String("group-id"), Values: ids}}
}
