// Package aws owns drawbridge's AWS provider: a jit.Provider that enforces
// JIT on EC2 security groups through aws-sdk-go-v2, with the semantics of
// the simulated provider (internal/provider/sim):
//
//   - enable revokes exactly the ingress rules of the instance's security
//     groups that let in a guarded port, putting back the remainder of each
//     (the same source on the other ports and, for an all-traffic rule, on
//     every other IP protocol); disable restores them exactly. What was
//     revoked and added is recorded in the store (kind "aws.revoked"), so a
//     restarted server still restores it;
//   - a grant is a security group of its own ("drawbridge-jit-<grant>",
//     tagged drawbridge:managed-by, drawbridge:vm, drawbridge:grant),
//     authorised for the grant's source on its port and attached to the
//     instance's primary ENI; at expiry it is detached and deleted. The tags
//     let a crashed server find what it owns;
//   - an ENI with no free slot (five groups) fails Check and Apply with
//     ErrNoRoom before anything changes.
//
// Every Apply is a reconcile from what EC2 reports now: applying twice
// changes nothing, and a rule someone re-added while JIT is enabled is
// revoked again. Throttling (RequestLimitExceeded), 500s and eventual
// consistency right after a create are left to the SDK's retryer.
package aws

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// EC2API is the part of *ec2.Client the provider uses.
type EC2API interface {
	DescribeNetworkInterfaces(context.Context, *ec2.DescribeNetworkInterfacesInput, ...func(*ec2.Options)) (*ec2.DescribeNetworkInterfacesOutput, error)
	DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	CreateSecurityGroup(context.Context, *ec2.CreateSecurityGroupInput, ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error)
	DeleteSecurityGroup(context.Context, *ec2.DeleteSecurityGroupInput, ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error)
	AuthorizeSecurityGroupIngress(context.Context, *ec2.AuthorizeSecurityGroupIngressInput, ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error)
	RevokeSecurityGroupIngress(context.Context, *ec2.RevokeSecurityGroupIngressInput, ...func(*ec2.Options)) (*ec2.RevokeSecurityGroupIngressOutput, error)
	ModifyNetworkInterfaceAttribute(context.Context, *ec2.ModifyNetworkInterfaceAttributeInput, ...func(*ec2.Options)) (*ec2.ModifyNetworkInterfaceAttributeOutput, error)
}

// Errors Check and Apply wrap (the service turns them into 409s).
var (
	ErrUnprotectable = errors.New("JIT cannot protect this instance")
	ErrNoRoom        = errors.New("no room for a JIT security group")
	ErrInventory     = errors.New("the instance's network objects are missing")
)

// MaxGroupsPerENI is EC2's default quota of security groups per ENI.
const MaxGroupsPerENI = inventory.MaxSecurityGroupsPerENI

// Tags on every security group drawbridge creates.
const (
	TagManagedBy = "drawbridge:managed-by"
	TagVM        = "drawbridge:vm"
	TagGrant     = "drawbridge:grant"
	TagExpires   = "drawbridge:expires"
	managedBy    = "drawbridge"
)

// GroupPrefix starts the name of every security group drawbridge creates.
const GroupPrefix = "drawbridge-jit-"

// Provider is the AWS provider. It is safe for concurrent use.
type Provider struct {
	ec2  EC2API
	objs store.ObjectStore

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per security group: holds are read-modify-write

	// MaxRulesPerGroup is the account's quota of inbound rules per
	// security group (counted separately for IPv4 and IPv6 sources); 0
	// means EC2's default, 60. Carving a port out of a rule adds rules (an
	// all-traffic rule becomes about 256), so a carve that would not fit
	// is refused (ErrNoRoom) before anything changes.
	MaxRulesPerGroup int
}

var (
	_ jit.Provider = (*Provider)(nil)
	_ jit.Holder   = (*Provider)(nil)
)

// New returns a provider over an EC2 client; objs keeps the records of what
// JIT revoked.
func New(client EC2API, objs store.ObjectStore) *Provider {
	return &Provider{ec2: client, objs: objs, locks: map[string]*sync.Mutex{}}
}

// eniView is an ENI as EC2 reports it.
type eniView struct {
	id, vpc string
	groups  []string
}

// groupView is a security group as EC2 reports it.
type groupView struct {
	id, name, vpc string
	rules         []Rule
	tags          map[string]string
}

func (g *groupView) managed() bool { return g.tags[TagManagedBy] == managedBy }

// view is what one reconcile reads from EC2.
type view struct {
	vm      inventory.VM
	name    string // for messages
	guarded []jit.GuardedPort
	grants  []jit.DesiredGrant
	enis    []eniView
	groups  map[string]*groupView // every group read, by ID
	owned   []*groupView          // drawbridge's groups for this VM
}

// Check reports whether Apply would succeed, changing nothing. It reads EC2
// only (never the store).
func (p *Provider) Check(ctx context.Context, vm inventory.VM, d jit.Desired) error {
	v, err := p.load(ctx, vm, d, nil)
	if err != nil {
		return err
	}
	if _, err = v.primaryGroups(); err != nil {
		return err
	}
	return v.checkRuleQuota(p.maxRules())
}

// Apply makes the instance's security groups match desired.
func (p *Provider) Apply(ctx context.Context, vm inventory.VM, d jit.Desired) (jit.Observed, error) {
	fp, err := p.footprint(ctx, vm.ID)
	if err != nil {
		return jit.Observed{}, err
	}
	v, err := p.load(ctx, vm, d, fp)
	if err != nil {
		return jit.Observed{}, err
	}
	final, err := v.primaryGroups()
	if err != nil {
		return jit.Observed{}, err
	}
	if err := v.checkRuleQuota(p.maxRules()); err != nil {
		return jit.Observed{}, err
	}
	// Closing first: expired grants go, then guarded ports are revoked,
	// and only then are the wanted grants opened.
	if err := p.removeUnwanted(ctx, v); err != nil {
		return jit.Observed{}, err
	}
	// Rules JIT revoked that someone re-added are drift: revoked again
	// and reported (Observed.Drift) for the service to audit.
	drift, err := p.reconcileRevocations(ctx, v, fp)
	if err != nil {
		return jit.Observed{Drift: drift}, err
	}
	if err := p.ensureGrants(ctx, v, final); err != nil {
		return jit.Observed{Drift: drift}, err
	}
	obs := jit.Observed{Drift: drift}
	for _, g := range v.grants {
		obs.Enforced = append(obs.Enforced, g.GrantID)
	}
	return obs, nil
}

func (p *Provider) lock(groupID string) func() {
	p.mu.Lock()
	m := p.locks[groupID]
	if m == nil {
		m = &sync.Mutex{}
		p.locks[groupID] = m
	}
	p.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// load reads the instance's ENIs and the groups that matter: those
// attached, drawbridge's for this VM, and those this VM holds a revocation
// in (fp, nil in Check).
func (p *Provider) load(ctx context.Context, vm inventory.VM, d jit.Desired, fp []string) (*view, error) {
	if d.VMID != "" && !strings.EqualFold(d.VMID, vm.ID) {
		return nil, fmt.Errorf("desired state is for virtual machine %s, not %s", d.VMID, vm.ID)
	}
	v := &view{vm: vm, name: vm.ID, groups: map[string]*groupView{}}
	if vm.InstanceID != "" {
		v.name = vm.InstanceID + " (" + vm.ID + ")"
	}
	var err error
	if v.guarded, err = normGuarded(vm.ID, d.Guarded); err != nil {
		return nil, err
	}
	v.grants = usableGrants(v.guarded, d.Grants)
	for _, g := range v.grants {
		if g.Source.IsZero() { // fail closed: an unset source must not become "any"
			return nil, fmt.Errorf("virtual machine %s: grant %s: source is not set", vm.ID, g.GrantID)
		}
	}
	if v.enis, err = p.describeENIs(ctx, vm, len(v.guarded) > 0); err != nil {
		return nil, err
	}
	if len(v.guarded) > 0 && len(v.enis) == 0 {
		return nil, fmt.Errorf("instance %s has no network interfaces, so there is no security group to revoke from: %w", v.name, ErrUnprotectable)
	}
	owned, err := p.describeGroups(ctx, []types.Filter{{Name: awssdk.String("tag:" + TagVM), Values: []string{vmTag(vm.ID)}}})
	if err != nil {
		return nil, err
	}
	for _, g := range owned {
		v.groups[g.id] = g
		v.owned = append(v.owned, g)
	}
	var ids []string
	for _, e := range v.enis {
		ids = append(ids, e.groups...)
	}
	ids = append(ids, fp...)
	ids = slices.DeleteFunc(sortedUnique(ids), func(id string) bool { return v.groups[id] != nil })
	if len(ids) > 0 {
		gs, err := p.describeGroups(ctx, []types.Filter{{Name: awssdk.String("group-id"), Values: ids}})
		if err != nil {
			return nil, err
		}
		for _, g := range gs {
			v.groups[g.id] = g
		}
	}
	if len(v.guarded) > 0 {
		for _, e := range v.enis {
			for _, id := range e.groups {
				if v.groups[id] == nil {
					return nil, fmt.Errorf("network interface %s: security group %s not found: %w", e.id, id, ErrInventory)
				}
			}
		}
	}
	return v, nil
}

// grantGroup returns drawbridge's group for a grant, if it exists.
func (v *view) grantGroup(grantID string) *groupView {
	for _, g := range v.owned {
		if g.tags[TagGrant] == grantID {
			return g
		}
	}
	return nil
}

// wanted reports whether an owned group belongs to a wanted grant.
func (v *view) wanted(g *groupView) bool {
	return slices.ContainsFunc(v.grants, func(d jit.DesiredGrant) bool { return d.GrantID == g.tags[TagGrant] })
}

// primaryGroups is the primary ENI's group list once Apply is done: the
// groups that are not drawbridge's unwanted ones, plus one slot per wanted
// grant not yet attached. More than the quota is ErrNoRoom.
func (v *view) primaryGroups() ([]string, error) {
	if len(v.enis) == 0 {
		return nil, nil
	}
	primary := v.enis[0]
	var out []string
	for _, id := range primary.groups {
		if g := v.groups[id]; g != nil && g.managed() && g.tags[TagVM] == vmTag(v.vm.ID) && !v.wanted(g) {
			continue
		}
		out = append(out, id)
	}
	missing := 0
	for _, d := range v.grants {
		if g := v.grantGroup(d.GrantID); g == nil || !slices.Contains(out, g.id) {
			missing++
		}
	}
	if n := len(out) + missing; n > MaxGroupsPerENI {
		return nil, fmt.Errorf("%s has no free security group slot (%d in use, %d more needed, at most %d) for the JIT security groups of instance %s: %w",
			primary.id, len(out), missing, MaxGroupsPerENI, v.name, ErrNoRoom)
	}
	return out, nil
}

func (p *Provider) maxRules() int {
	if p.MaxRulesPerGroup > 0 {
		return p.MaxRulesPerGroup
	}
	return 60
}

// checkRuleQuota refuses an enable whose carve would leave one of the
// instance's groups with more rules than the quota allows.
func (v *view) checkRuleQuota(limit int) error {
	if len(v.guarded) == 0 {
		return nil
	}
	hs := heldPorts([]Holder{{Ports: v.guarded}})
	seen := map[string]bool{}
	for _, e := range v.enis {
		for _, id := range e.groups {
			g := v.groups[id]
			if g == nil || g.managed() || seen[id] {
				continue
			}
			seen[id] = true
			want, _, _ := carve(g.rules, hs)
			v4, v6 := 0, 0
			for _, r := range want {
				if r.CIDRv6 != "" {
					v6++
				} else {
					v4++
				}
			}
			if n := max(v4, v6); n > limit {
				return fmt.Errorf("security group %s would need %d inbound rules once the guarded ports are carved out of its rules (an all-traffic rule becomes one rule per IP protocol), more than the quota of %d; raise the account's rules-per-group quota or narrow the rule: %w",
					id, n, limit, ErrNoRoom)
			}
		}
	}
	return nil
}

// usableGrants keeps the grants for a guarded port, sorted by grant ID, as
// the simulated provider does.
func usableGrants(guarded []jit.GuardedPort, in []jit.DesiredGrant) []jit.DesiredGrant {
	var out []jit.DesiredGrant
	for _, g := range in {
		if g.GrantID == "" {
			continue
		}
		if slices.ContainsFunc(guarded, func(gp jit.GuardedPort) bool {
			proto := g.Protocol
			if proto == "" {
				proto = "*"
			}
			return gp.Port == g.Port && gp.Protocol.Overlaps(proto)
		}) {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GrantID < out[j].GrantID })
	return slices.CompactFunc(out, func(a, b jit.DesiredGrant) bool { return a.GrantID == b.GrantID })
}

// normGuarded returns the guarded ports sorted and without duplicates.
func normGuarded(vmID string, in []jit.GuardedPort) ([]jit.GuardedPort, error) {
	out := slices.Clone(in)
	for i, g := range out {
		if g.Port < 1 || g.Port > 65535 {
			return nil, fmt.Errorf("virtual machine %s: guarded port [%d]: port %d is not between 1 and 65535", vmID, i, g.Port)
		}
		if g.Protocol == "" {
			out[i].Protocol = "*"
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Port != out[j].Port {
			return out[i].Port < out[j].Port
		}
		return out[i].Protocol < out[j].Protocol
	})
	return slices.Compact(out), nil
}

func sortedUnique(ss []string) []string {
	out := slices.Clone(ss)
	sort.Strings(out)
	return slices.Compact(out)
}
