// Package sim owns the simulated network provider: a jit.Provider that
// enforces JIT on Azure NSGs and AWS security groups held as inventory
// objects in a store.ObjectStore, with the clouds' own rules (NSG priorities
// 100-4096 unique per direction, default rules, subnet NSG then NIC NSG;
// allow-only security groups, at most five per ENI).
//
// What it owns in those objects, and nothing else:
//   - Azure: inbound rules named "drawbridge-jit-..." (RulePrefix). Deny
//     rules are per (VM, port, protocol), allow rules per grant. Every other
//     rule is the user's and is never modified, renumbered or removed.
//   - AWS: security groups whose GroupId starts with "sg-jit-" (one per
//     grant), their attachment to the instance's primary ENI, and the ingress
//     permissions it revoked from the user's groups, recorded under the
//     object kind KindRevoked so that disabling JIT puts them back exactly.
//
// NSG placement, per NSG on the VM's path (subnet NSG, NIC NSG, each NIC):
//   - "covering" user rules are inbound rules whose protocol and destination
//     port ranges overlap the guarded port (addresses are not compared);
//   - the deny rule goes after the last covering rule, before the next user
//     rule, leaving up to 10 free priorities ahead of itself for allow
//     rules; with no covering rule that window starts at 100, so the deny
//     rule is ahead of every user rule. If the window has no free priority,
//     the deny rule goes to the first free priorities further down (past
//     user rules that do not cover the port, which does not change what
//     it matches first); if there is none up to 4096, Apply fails with
//     ErrNoRoom naming the NSG and the covering rule;
//   - a grant's allow rule takes the highest free priority between the last
//     covering rule and the deny rule, or fails with ErrNoRoom.
//
// Apply is level-triggered and idempotent: it computes the wanted objects
// from the Desired state and the objects as they are now (never from a log
// of what it did before), writes only objects whose JSON changes, and does
// all reads and writes in one ObjectTx. Check runs the same computation on
// in-memory copies and writes nothing.
package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/jsonmemo"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Errors Check and Apply wrap, so callers can tell a VM JIT cannot protect
// (or a firewall without room) from a storage failure.
var (
	// ErrUnprotectable: the VM has nothing JIT could put a rule in (no NSG on
	// any NIC or subnet, no ENI), or its cloud is not simulated.
	ErrUnprotectable = errors.New("JIT cannot protect this virtual machine")
	// ErrNoRoom: no free NSG priority or security group slot for a JIT object.
	ErrNoRoom = errors.New("no room for a JIT rule")
	// ErrInventory: an object the VM refers to is missing or malformed.
	ErrInventory = errors.New("inventory is inconsistent")
)

// Provider is the simulated network provider. It is safe for concurrent use
// as far as the ObjectStore serialises conflicting transactions.
type Provider struct {
	objs store.ObjectStore
}

var _ jit.Provider = (*Provider)(nil)

// New returns a provider over the inventory objects in objs.
func New(objs store.ObjectStore) *Provider { return &Provider{objs: objs} }

// Check reports whether Apply(vm, desired) would succeed, changing nothing.
func (p *Provider) Check(ctx context.Context, vm inventory.VM, desired jit.Desired) error {
	return p.objs.ObjectTx(ctx, func(o store.Objects) error {
		s := newSession(ctx, o)
		_, err := s.reconcile(vm, desired)
		return err // nothing is flushed: the copies are dropped
	})
}

// Apply makes the VM's simulated firewall match desired, in one transaction.
// On error nothing is written.
func (p *Provider) Apply(ctx context.Context, vm inventory.VM, desired jit.Desired) (jit.Observed, error) {
	var obs jit.Observed
	err := p.objs.ObjectTx(ctx, func(o store.Objects) error {
		s := newSession(ctx, o)
		var err error
		if obs.Enforced, err = s.reconcile(vm, desired); err != nil {
			return err
		}
		obs.ConnectTo = s.connectTo
		return s.flush()
	})
	if err != nil {
		return jit.Observed{}, err
	}
	return obs, nil
}

// ApplyTx is Apply inside the caller's transaction (jit.TxProvider): the
// firewall change commits or rolls back together with the caller's change
// to grants and policies, so a failed request leaves nothing behind. On
// error nothing has been written to objs.
func (p *Provider) ApplyTx(ctx context.Context, objs store.Objects, vm inventory.VM, desired jit.Desired) (jit.Observed, error) {
	s := newSession(ctx, objs)
	enforced, err := s.reconcile(vm, desired)
	if err != nil {
		return jit.Observed{}, err
	}
	if err := s.flush(); err != nil {
		return jit.Observed{}, err
	}
	return jit.Observed{Enforced: enforced, ConnectTo: s.connectTo}, nil
}

func (s *session) reconcile(vm inventory.VM, d jit.Desired) ([]string, error) {
	if d.VMID != "" && !strings.EqualFold(d.VMID, vm.ID) {
		return nil, fmt.Errorf("desired state is for virtual machine %s, not %s", d.VMID, vm.ID)
	}
	guarded, err := normGuarded(vm, d.Guarded)
	if err != nil {
		return nil, err
	}
	grants := usableGrants(guarded, d.Grants)
	for _, g := range grants {
		// Fail closed: an unset source must not become "any".
		if g.Source.IsZero() {
			return nil, fmt.Errorf("virtual machine %s: grant %s: source is not set", vm.ID, g.GrantID)
		}
	}
	if err := s.loadFootprint(vm); err != nil {
		return nil, err
	}
	var enforced []string
	switch vm.Cloud {
	case inventory.AWS:
		enforced, err = s.reconcileAWS(vm, guarded, grants)
	case inventory.Azure, "":
		enforced, err = s.reconcileAzure(vm, guarded, grants)
	default:
		return nil, fmt.Errorf("virtual machine %s: cloud %q is not simulated by the sim provider (azure, aws): %w", vm.ID, vm.Cloud, ErrUnprotectable)
	}
	if err != nil {
		return nil, err
	}
	s.saveFootprint(vm)
	return enforced, nil
}

// normGuarded returns the guarded ports sorted by (port, protocol), so that
// placement (which depends on order) is the same on every Apply.
func normGuarded(vm inventory.VM, in []jit.GuardedPort) ([]jit.GuardedPort, error) {
	out := slices.Clone(in)
	for i, g := range out {
		if g.Port < 1 || g.Port > 65535 {
			return nil, fmt.Errorf("virtual machine %s: guarded port [%d]: port %d is not between 1 and 65535", vm.ID, i, g.Port)
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
	return slices.CompactFunc(out, func(a, b jit.GuardedPort) bool { return a == b }), nil
}

// usableGrants keeps the grants whose port JIT guards, sorted by grant ID.
// A grant for an unguarded port has no deny rule to go ahead of (the port
// is not closed by JIT), so it is not enforced and not reported as enforced;
// with no guarded port at all JIT is disabled and no grant applies.
func usableGrants(guarded []jit.GuardedPort, in []jit.DesiredGrant) []jit.DesiredGrant {
	var out []jit.DesiredGrant
	for _, g := range in {
		if _, ok := guardFor(guarded, g); ok && g.GrantID != "" {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GrantID < out[j].GrantID })
	return slices.CompactFunc(out, func(a, b jit.DesiredGrant) bool { return a.GrantID == b.GrantID })
}

// guardFor returns the guarded port a grant opens: same port, and the same
// protocol if guarded so, else an overlapping one.
func guardFor(guarded []jit.GuardedPort, g jit.DesiredGrant) (jit.GuardedPort, bool) {
	var match jit.GuardedPort
	found := false
	for _, gp := range guarded {
		if gp.Port != g.Port {
			continue
		}
		proto := g.Protocol
		if proto == "" {
			proto = "*"
		}
		if gp.Protocol == proto {
			return gp, true
		}
		if !found && gp.Protocol.Overlaps(proto) {
			match, found = gp, true
		}
	}
	return match, found
}

// ---- session: in-memory copies of the objects one reconcile touches ----

type objKey struct{ kind, key string }

type entry struct {
	// orig is the JSON as loaded (the stored bytes, from a store.RawObjects;
	// json.Marshal's encoding otherwise); nil if the object did not exist.
	orig    []byte
	val     any // pointer to the decoded, possibly changed value; nil once deleted
	deleted bool
	// pristine, if set, is what orig decoded to (never modified): a val
	// still deeply equal to it is unchanged, and flush skips encoding it.
	// put clears it: a value put is encoded without that comparison, which
	// would only find the change (a changed NSG, on every request) after
	// walking it.
	pristine any
}

// session caches every object a reconcile reads, so that the computation
// works on copies; flush writes back exactly the objects whose JSON changed.
type session struct {
	ctx  context.Context
	objs store.Objects
	m    map[objKey]*entry

	oldFP, newFP *Footprint // where the VM's JIT objects were and are (footprint.go)
	// connectTo: where the grants' requesters connect, if not the VM
	// (a firewall's DNAT rule, firewall.go); Observed.ConnectTo.
	connectTo map[string]netip.AddrPort
}

func newSession(ctx context.Context, o store.Objects) *session {
	return &session{ctx: ctx, objs: o, m: map[objKey]*entry{}}
}

// get returns the cached copy of (kind, id), loading it on first use; nil
// (and no error) if it does not exist.
func get[T any](s *session, kind, id string) (*T, error) {
	k := objKey{kind, inventory.Key(id)}
	if e, ok := s.m[k]; ok {
		if e.val == nil {
			return nil, nil
		}
		v, ok := e.val.(*T)
		if !ok {
			return nil, fmt.Errorf("%s %s: loaded as %T, wanted %T", kind, id, e.val, new(T))
		}
		return v, nil
	}
	v := new(T)
	if rg, ok := s.objs.(store.RawObjects); ok {
		// The stored bytes stand for the object: flush compares its new
		// encoding with them.
		raw, err := rg.GetObjectRaw(s.ctx, kind, k.key)
		if errors.Is(err, store.ErrNotFound) {
			s.m[k] = &entry{}
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s %s: %w", kind, id, err)
		}
		pristine, err := jsonmemo.Decode(rg.Memo(), raw, v)
		if err != nil {
			return nil, fmt.Errorf("read %s %s: decode: %w", kind, id, err)
		}
		s.m[k] = &entry{orig: raw, val: v, pristine: pristine}
		return v, nil
	}
	err := s.objs.GetObject(s.ctx, kind, k.key, v)
	if errors.Is(err, store.ErrNotFound) {
		s.m[k] = &entry{}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", kind, id, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", kind, id, err)
	}
	s.m[k] = &entry{orig: b, val: v}
	return v, nil
}

// put makes v the new value of (kind, id).
func (s *session) put(kind, id string, v any) {
	k := objKey{kind, inventory.Key(id)}
	e, ok := s.m[k]
	if !ok {
		// Never read: remember that we do not know the stored bytes, so that
		// flush always writes it.
		e = &entry{orig: nil}
		s.m[k] = e
	}
	e.val, e.deleted, e.pristine = v, false, nil
}

// del removes (kind, id).
func (s *session) del(kind, id string) {
	k := objKey{kind, inventory.Key(id)}
	e, ok := s.m[k]
	if !ok {
		e = &entry{orig: []byte("unknown")}
		s.m[k] = e
	}
	e.val, e.deleted = nil, true
}

// keys lists the keys of kind as they are in this session (stored ones plus
// those created here, minus those deleted here), in key order.
func (s *session) keys(kind string) ([]string, error) {
	seen := map[string]bool{}
	err := s.objs.ListObjects(s.ctx, kind, func(key string, _ []byte) error {
		seen[key] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	for k, e := range s.m {
		if k.kind == kind {
			seen[k.key] = e.val != nil
		}
	}
	var out []string
	for k, ok := range seen {
		if ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

// flush writes the changed objects, in (kind, key) order so that backends
// see a deterministic sequence. It hands the values it writes to the
// decode memo: the session must not be used after it.
func (s *session) flush() error {
	ks := make([]objKey, 0, len(s.m))
	for k := range s.m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].kind != ks[j].kind {
			return ks[i].kind < ks[j].kind
		}
		return ks[i].key < ks[j].key
	})
	for _, k := range ks {
		e := s.m[k]
		switch {
		case e.deleted:
			if e.orig != nil {
				if err := s.objs.DeleteObject(s.ctx, k.kind, k.key); err != nil {
					return fmt.Errorf("delete %s %s: %w", k.kind, k.key, err)
				}
			}
		case e.val != nil:
			if e.pristine != nil && reflect.DeepEqual(e.val, e.pristine) {
				continue
			}
			enc, err := store.EncodeJSON(e.val)
			if err != nil {
				return fmt.Errorf("encode %s %s: %w", k.kind, k.key, err)
			}
			b := enc.Bytes()
			if string(b) == string(e.orig) {
				continue
			}
			// A store that keeps the bytes as given gets the encoding
			// just made; a difference from the bytes read is a change (at
			// worst, once, an object another encoder wrote with the same
			// meaning is rewritten), so no canonical re-encoding is needed.
			if rp, ok := s.objs.(store.RawObjects); ok {
				if err := rp.PutObjectRaw(s.ctx, k.kind, k.key, enc); err != nil {
					return fmt.Errorf("write %s %s: %w", k.kind, k.key, err)
				}
				// The next reader of these bytes skips decoding them;
				// the memo keeps its own copy of the value.
				rp.Memo().Remember(b, e.val)
				continue
			}
			if err := s.objs.PutObject(s.ctx, k.kind, k.key, e.val); err != nil {
				return fmt.Errorf("write %s %s: %w", k.kind, k.key, err)
			}
		}
	}
	return nil
}
