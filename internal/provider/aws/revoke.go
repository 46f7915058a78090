package aws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Object kinds the provider keeps in the store.
const (
	// KindRevoked, keyed by security group ID, records which VMs need which
	// ports closed in a user's group, the user rules JIT revoked and the
	// remainder rules it added: with it the group as the user had it is
	// (current - Added) + Revoked.
	KindRevoked = "aws.revoked"
	// KindFootprint, keyed by VM, lists the groups the VM holds a
	// revocation in, so that disabling releases a group even after it was
	// detached from the instance.
	KindFootprint = "aws.footprint"
)

// Record is a KindRevoked object.
type Record struct {
	GroupID string   `json:"groupId"`
	Holders []Holder `json:"holders"`
	Revoked []Rule   `json:"revoked,omitempty"`
	Added   []Rule   `json:"added,omitempty"`
}

// Holder is one JIT-enabled VM that needs ports closed in a group.
type Holder struct {
	VMID  string            `json:"vmId"`
	Ports []jit.GuardedPort `json:"ports"`
}

// Footprint is a KindFootprint object.
type Footprint struct {
	Groups []string `json:"groups"`
}

func (p *Provider) footprint(ctx context.Context, vmID string) ([]string, error) {
	var fp Footprint
	err := p.objs.ObjectTx(ctx, func(o store.Objects) error {
		err := o.GetObject(ctx, KindFootprint, inventory.Key(vmID), &fp)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the JIT footprint of %s: %w", vmID, err)
	}
	return fp.Groups, nil
}

// reconcileRevocations sets this VM's holds on the user groups of its ENIs,
// releases its holds on groups it no longer uses, and makes each such group
// the user's rules minus what all holders need closed.
// It returns the drift it repaired: rules JIT had revoked that someone
// re-added, revoked again.
func (p *Provider) reconcileRevocations(ctx context.Context, v *view, fp []string) ([]jit.DriftRepair, error) {
	attached := map[string]bool{}
	var groups []string
	for _, e := range v.enis {
		for _, id := range e.groups {
			if g := v.groups[id]; g != nil && !g.managed() && !attached[id] {
				attached[id] = true
				groups = append(groups, id)
			}
		}
	}
	for _, id := range fp {
		if !attached[id] {
			groups = append(groups, id)
		}
	}
	sort.Strings(groups)
	var repaired []jit.DriftRepair
	for _, id := range slices.Compact(groups) {
		hold := attached[id] && len(v.guarded) > 0
		drift, err := p.reconcileGroup(ctx, v.vm.ID, id, v.groups[id], hold, v.guarded)
		if len(drift) > 0 {
			repaired = append(repaired, driftRepair(id, drift))
		}
		if err != nil {
			return repaired, err
		}
	}
	return repaired, nil
}

// driftRepair describes re-added rules revoked again in a group.
func driftRepair(groupID string, rules []Rule) jit.DriftRepair {
	var rs []string
	for _, r := range rules {
		rs = append(rs, r.String())
	}
	list := strings.Join(rs, ", ")
	d := jit.DriftRepair{
		Found:    "security group " + groupID + ": ingress " + list + " re-added while JIT guards it",
		Restored: "revoked " + list + " from " + groupID + " again",
	}
	// One port when every rule is the same single port.
	if r := rules[0]; r.From == r.To && r.From > 0 && !slices.ContainsFunc(rules, func(x Rule) bool { return x.From != r.From || x.To != r.To || x.Protocol != r.Protocol }) {
		d.Port, d.Protocol = int(r.From), r.Protocol
	}
	return d
}

// reconcileGroup is one group's step. The record is written twice: before
// the EC2 calls as the union of the old and new records (so a crash between
// calls still knows every rule JIT revoked or added), after them exactly.
// It returns the re-added rules it revoked again (drift), once revoked.
func (p *Provider) reconcileGroup(ctx context.Context, vmID, groupID string, g *groupView, hold bool, guarded []jit.GuardedPort) ([]Rule, error) {
	defer p.lock(groupID)()
	vmKey := inventory.Key(vmID)
	rec, err := p.record(ctx, groupID)
	if err != nil {
		return nil, err
	}
	if g == nil { // the group is gone: nothing to restore into
		return nil, p.saveRecord(ctx, vmKey, groupID, dropHolder(rec, vmKey), false)
	}
	if rec != nil {
		// Another holder may have changed the group since load.
		if gs, err := p.describeGroups(ctx, groupFilter(groupID)); err != nil {
			return nil, err
		} else if len(gs) == 1 {
			g = gs[0]
		}
	}
	next := dropHolder(rec, vmKey)
	if hold {
		if next == nil {
			next = &Record{GroupID: groupID}
		}
		next.Holders = append(next.Holders, Holder{VMID: vmKey, Ports: slices.Clone(guarded)})
		sort.Slice(next.Holders, func(i, j int) bool { return next.Holders[i].VMID < next.Holders[j].VMID })
	}
	user := userRules(g.rules, rec)
	want := user
	if next != nil {
		want, next.Revoked, next.Added = carve(user, heldPorts(next.Holders))
	}
	add, del := diff(g.rules, want)
	if len(add) == 0 && len(del) == 0 && jsonEqual(rec, next) {
		return nil, nil
	}
	drift := readded(rec, del)
	if err := p.saveRecord(ctx, vmKey, groupID, union(rec, next), hold); err != nil {
		return nil, err
	}
	// Remainders (or restored rules) first, then the revocations: no
	// moment lets in less than the user allowed on other ports, and the
	// guarded ports are never opened by this step.
	if err := p.authorize(ctx, groupID, add, false); err != nil {
		return nil, err
	}
	if err := p.revoke(ctx, groupID, del); err != nil {
		return nil, err
	}
	return drift, p.saveRecord(ctx, vmKey, groupID, next, hold)
}

// userRules recovers the group's rules as the user had them: the current
// ones without JIT's remainders, with the revoked ones back. A revoked rule
// someone re-added meanwhile (drift) is the same EC2 rule; the recorded one,
// description included, is what disable restores.
func userRules(cur []Rule, rec *Record) []Rule {
	if rec == nil {
		return cur
	}
	skip := map[string]bool{}
	for _, r := range rec.Added {
		skip[r.Key()] = true
	}
	for _, r := range rec.Revoked {
		skip[r.Key()] = true
	}
	var out []Rule
	for _, r := range cur {
		if !skip[r.Key()] {
			out = append(out, r)
		}
	}
	return append(out, rec.Revoked...)
}

// readded lists the rules about to be revoked that the record says JIT had
// revoked already: they came back since.
func readded(rec *Record, del []Rule) []Rule {
	if rec == nil {
		return nil
	}
	var out []Rule
	for _, r := range del {
		if slices.ContainsFunc(rec.Revoked, func(x Rule) bool { return x.Key() == r.Key() }) {
			out = append(out, r)
		}
	}
	return out
}

func dropHolder(rec *Record, vmKey string) *Record {
	if rec == nil {
		return nil
	}
	n := &Record{GroupID: rec.GroupID, Revoked: rec.Revoked, Added: rec.Added}
	for _, h := range rec.Holders {
		if h.VMID != vmKey {
			n.Holders = append(n.Holders, h)
		}
	}
	if len(n.Holders) == 0 {
		return nil
	}
	return n
}

// union is the record kept while a group changes from old to next.
func union(old, next *Record) *Record {
	if old == nil {
		return next
	}
	u := &Record{GroupID: old.GroupID}
	if next != nil {
		u.Holders = next.Holders
	}
	merge := func(a, b []Rule) []Rule {
		out := slices.Clone(a)
		for _, r := range b {
			if !slices.ContainsFunc(out, func(x Rule) bool { return x.Key() == r.Key() }) {
				out = append(out, r)
			}
		}
		return out
	}
	var nr, na []Rule
	if next != nil {
		nr, na = next.Revoked, next.Added
	}
	u.Revoked, u.Added = merge(old.Revoked, nr), merge(old.Added, na)
	return u
}

func (p *Provider) record(ctx context.Context, groupID string) (*Record, error) {
	var rec *Record
	err := p.objs.ObjectTx(ctx, func(o store.Objects) error {
		var r Record
		err := o.GetObject(ctx, KindRevoked, groupID, &r)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err == nil {
			rec = &r
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the JIT record of %s: %w", groupID, err)
	}
	return rec, nil
}

// saveRecord writes rec (deleting the record when nil and it has nothing
// to remember) and keeps the VM's footprint listing the group while it
// holds it or the record is mid-change.
func (p *Provider) saveRecord(ctx context.Context, vmKey, groupID string, rec *Record, hold bool) error {
	err := p.objs.ObjectTx(ctx, func(o store.Objects) error {
		if rec == nil || (len(rec.Holders) == 0 && len(rec.Revoked) == 0 && len(rec.Added) == 0) {
			if err := o.DeleteObject(ctx, KindRevoked, groupID); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		} else if err := o.PutObject(ctx, KindRevoked, groupID, rec); err != nil {
			return err
		}
		var fp Footprint
		if err := o.GetObject(ctx, KindFootprint, vmKey, &fp); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		keep := hold || (rec != nil && len(rec.Holders) == 0)
		n := slices.DeleteFunc(slices.Clone(fp.Groups), func(id string) bool { return id == groupID })
		if keep {
			n = sortedUnique(append(n, groupID))
		}
		if slices.Equal(n, fp.Groups) {
			return nil
		}
		if len(n) == 0 {
			if err := o.DeleteObject(ctx, KindFootprint, vmKey); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return nil
		}
		return o.PutObject(ctx, KindFootprint, vmKey, Footprint{Groups: n})
	})
	if err != nil {
		return fmt.Errorf("write the JIT record of %s: %w", groupID, err)
	}
	return nil
}

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}
