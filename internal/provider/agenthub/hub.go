// Package agenthub is the server side of the host agent: the jit.Provider
// for VMs whose provider is "nftables" (Linux hosts guarded by
// `drawbridge agent`).
//
// The hub does not touch any firewall itself. It keeps, per VM, the latest
// desired state the JIT service handed to Apply, numbered with a version,
// and pushes it to every agent streaming for that VM. Agents apply it to
// their kernel and report back which grants they enforce; the hub hands that
// report to the JIT service (Reporter, normally jit.Service.ReportObserved),
// so a grant shows as applied only once its host enforces it.
//
// # Guarantees
//
//   - Apply never blocks on an agent and never fails because no agent is
//     connected: the desired state is recorded, and an agent that connects
//     later receives it as its first snapshot. Apply returns Pending: true,
//     with Enforced limited to the grants of this desired state that an agent
//     has already confirmed (grants are immutable, so a confirmation of a
//     grant ID stays true for as long as the grant is desired).
//   - Versions increase strictly per hub (they start at the hub's creation
//     time in nanoseconds, so a restarted server's versions are higher than
//     the previous process's). Every snapshot an agent receives is complete
//     (guarded ports and all active grants), never a delta: losing one is
//     harmless, the next replaces it.
//   - Subscribers always receive the latest version; intermediate versions
//     may be skipped (latest wins). A subscriber connecting to a VM the hub
//     knows nothing about (e.g. after a server restart) triggers the
//     Reconciler, which reads the desired state from the store and Applies
//     it, before its first snapshot.
//   - A report older than the last accepted report of that VM, or for a
//     version this hub never issued, is ignored, so reordered reports never
//     un-apply a grant.
//   - The hub's state is in memory and per process: with several replicas,
//     every replica hears of changes made on the others through the
//     store's change notifications (PostgreSQL LISTEN/NOTIFY, see
//     internal/server/replicas.go) and re-Applies the VMs they touch, so an
//     agent may stream from any replica. Versions are per replica: an agent
//     takes the snapshot of the replica it streams from as authoritative.
package agenthub

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/nftables"
)

// Snapshot is the complete desired state of one VM, as streamed to its
// agent (one JSON object per line).
type Snapshot struct {
	Type    string          `json:"type"` // "snapshot"
	VM      string          `json:"vm"`
	Version uint64          `json:"version"`
	Guarded []SnapshotPort  `json:"guarded"`
	Grants  []SnapshotGrant `json:"grants"`
}

// SnapshotPort is a guarded port; Protocol is "Tcp", "Udp" or "*".
type SnapshotPort struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

// SnapshotGrant is one allowance. Source is "*" or a CIDR prefix.
type SnapshotGrant struct {
	ID       string    `json:"id"`
	Port     int       `json:"port"`
	Protocol string    `json:"protocol"`
	Source   string    `json:"source"`
	End      time.Time `json:"end"`
}

// Heartbeat is sent on an idle stream so either side notices a dead
// connection.
type Heartbeat struct {
	Type string    `json:"type"` // "heartbeat"
	Time time.Time `json:"time"`
}

// Report is what an agent says it enforces after applying a snapshot.
type Report struct {
	VM       string   `json:"vm"`
	Version  uint64   `json:"version"`
	Enforced []string `json:"enforced"`
	Error    string   `json:"error,omitempty"`
	// Drift, if set, is a repair of the table the agent made (see Drift).
	Drift *Drift `json:"drift,omitempty"`
}

// Disabled reports whether the snapshot asks for JIT to be off (no guarded
// port and no grant): the agent removes its table.
func (s Snapshot) Disabled() bool { return len(s.Guarded) == 0 && len(s.Grants) == 0 }

// State converts the snapshot to what the nftables firewall enforces: the
// "*" source becomes two grants (0.0.0.0/0 and ::/0), each keeping the
// grant's ID. Protocol "*" stays netrule.Any (the firewall expands it to
// tcp and udp). The result is validated.
func (s Snapshot) State() (nftables.State, error) {
	var st nftables.State
	for _, p := range s.Guarded {
		pr, err := netrule.ParseProtocol(p.Protocol)
		if err != nil {
			return st, fmt.Errorf("%w: guarded port %d: %v", nftables.ErrInvalid, p.Port, err)
		}
		st.Guarded = append(st.Guarded, nftables.GuardedPort{Port: p.Port, Protocol: pr})
	}
	for _, g := range s.Grants {
		pr, err := netrule.ParseProtocol(g.Protocol)
		if err != nil {
			return st, fmt.Errorf("%w: grant %q: %v", nftables.ErrInvalid, g.ID, err)
		}
		var srcs []netip.Prefix
		if g.Source == "*" {
			srcs = nftables.AnySource()
		} else {
			p, err := netip.ParsePrefix(g.Source)
			if err != nil {
				return st, fmt.Errorf("%w: grant %q: source %q: %v", nftables.ErrInvalid, g.ID, g.Source, err)
			}
			srcs = []netip.Prefix{p}
		}
		for _, src := range srcs {
			st.Grants = append(st.Grants, nftables.Grant{ID: g.ID, Port: g.Port, Protocol: pr, Source: src, End: g.End})
		}
	}
	return st, st.Validate()
}

// SnapshotOf renders a desired state (without a version).
func SnapshotOf(d jit.Desired) Snapshot {
	s := Snapshot{Type: "snapshot", VM: d.VMID, Guarded: []SnapshotPort{}, Grants: []SnapshotGrant{}}
	for _, p := range d.Guarded {
		s.Guarded = append(s.Guarded, SnapshotPort{Port: p.Port, Protocol: string(p.Protocol)})
	}
	for _, g := range d.Grants {
		src := "*"
		if !g.Source.IsAny() {
			src = g.Source.Prefix().String()
		}
		s.Grants = append(s.Grants, SnapshotGrant{ID: g.GrantID, Port: g.Port, Protocol: string(g.Protocol), Source: src, End: g.End.UTC()})
	}
	return s
}

// Reconciler makes the hub's record of a VM current, normally
// jit.Service.ReconcileVM (which calls Apply).
type Reconciler func(ctx context.Context, vmID string) error

// Reporter records an agent's report, normally jit.Service.ReportObserved.
type Reporter func(ctx context.Context, vmID string, enforced []string, providerErr string) error

// Hub is the jit.Provider for agent-guarded hosts. It is safe for
// concurrent use.
type Hub struct {
	repMu     sync.Mutex // serialises reports, so the Reporter sees them in order
	mu        sync.Mutex
	next      uint64
	vms       map[string]*vmState // by inventory.Key
	closed    chan struct{}
	closeOnce sync.Once

	reconcile Reconciler
	report    Reporter
	drift     DriftRecorder
}

type vmState struct {
	desired    *Snapshot // nil: never applied in this process
	reportVer  uint64
	confirmed  map[string]bool
	lastErr    string
	subs       map[*Subscription]struct{}
	reconciled bool
	drifts     int
}

var _ jit.Provider = (*Hub)(nil)

// New returns an empty hub.
func New() *Hub {
	return &Hub{next: uint64(time.Now().UnixNano()), vms: map[string]*vmState{}, closed: make(chan struct{})}
}

// SetReconciler sets the function called when an agent subscribes to a VM
// whose desired state the hub does not hold. Call before serving.
func (h *Hub) SetReconciler(r Reconciler) { h.reconcile = r }

// SetReporter sets the function that records agents' reports. Call before
// serving.
func (h *Hub) SetReporter(r Reporter) { h.report = r }

func (h *Hub) vm(id string) *vmState {
	k := inventory.Key(id)
	v := h.vms[k]
	if v == nil {
		v = &vmState{confirmed: map[string]bool{}, subs: map[*Subscription]struct{}{}}
		h.vms[k] = v
	}
	return v
}

// ErrNotHost is returned for a VM the hub cannot guard.
var ErrNotHost = errors.New("not an nftables host")

// Check validates desired without recording it: the VM's provider is
// nftables, and every port, protocol and source is one the agent can put in
// the kernel. It never uses the store.
func (h *Hub) Check(ctx context.Context, vm inventory.VM, desired jit.Desired) error {
	if vm.Provider != inventory.ProviderNftables {
		return fmt.Errorf("%w: %s has provider %q", ErrNotHost, vm.ID, vm.Provider)
	}
	_, err := stateOf(desired)
	return err
}

// Apply records desired as the VM's latest state under a new version and
// pushes it to the VM's agents. See the package documentation.
func (h *Hub) Apply(ctx context.Context, vm inventory.VM, desired jit.Desired) (jit.Observed, error) {
	if err := h.Check(ctx, vm, desired); err != nil {
		return jit.Observed{}, err
	}
	s := SnapshotOf(desired)
	s.VM = vm.ID
	h.mu.Lock()
	defer h.mu.Unlock()
	h.next++
	s.Version = h.next
	v := h.vm(vm.ID)
	v.desired = &s
	v.reconciled = true
	obs := jit.Observed{Pending: true}
	for _, g := range s.Grants {
		if v.confirmed[g.ID] {
			obs.Enforced = append(obs.Enforced, g.ID)
		}
	}
	for sub := range v.subs {
		sub.notify()
	}
	return obs, nil
}

// Latest returns the VM's latest recorded snapshot.
func (h *Hub) Latest(vmID string) (Snapshot, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.vms[inventory.Key(vmID)]
	if v == nil || v.desired == nil {
		return Snapshot{}, false
	}
	return *v.desired, true
}

// Subscription is one agent's stream of a VM's snapshots.
type Subscription struct {
	hub  *Hub
	vmID string
	c    chan struct{}
	last uint64
}

func (s *Subscription) notify() {
	select {
	case s.c <- struct{}{}:
	default:
	}
}

// Changed is signalled when a newer snapshot may be available.
func (s *Subscription) Changed() <-chan struct{} { return s.c }

// Closed is closed when the hub shuts down.
func (s *Subscription) Closed() <-chan struct{} { return s.hub.closed }

// Next returns the latest snapshot if it is newer than the last one Next
// returned.
func (s *Subscription) Next() (Snapshot, bool) {
	snap, ok := s.hub.Latest(s.vmID)
	if !ok || snap.Version <= s.last {
		return Snapshot{}, false
	}
	s.last = snap.Version
	return snap, true
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if v := s.hub.vms[inventory.Key(s.vmID)]; v != nil {
		delete(v.subs, s)
	}
}

// Subscribe registers an agent for vmID. If the hub holds no desired state
// for it yet, it runs the Reconciler first; the first Next then returns a
// full snapshot.
func (h *Hub) Subscribe(ctx context.Context, vmID string) (*Subscription, error) {
	sub := &Subscription{hub: h, vmID: vmID, c: make(chan struct{}, 1)}
	h.mu.Lock()
	v := h.vm(vmID)
	v.subs[sub] = struct{}{}
	need := v.desired == nil
	h.mu.Unlock()
	if need && h.reconcile != nil {
		if err := h.reconcile(ctx, vmID); err != nil {
			sub.Close()
			return nil, err
		}
	}
	if _, ok := h.Latest(vmID); !ok {
		sub.Close()
		return nil, fmt.Errorf("no desired state for %s", vmID)
	}
	sub.notify()
	return sub, nil
}

// Report records an agent's report and passes it to the Reporter. Stale
// reports (older than the last accepted one, or for a version never issued
// for this VM) are ignored and return nil.
func (h *Hub) Report(ctx context.Context, r Report) error {
	if err := h.recordDrift(ctx, r); err != nil {
		return err
	}
	h.repMu.Lock()
	defer h.repMu.Unlock()
	h.mu.Lock()
	v := h.vms[inventory.Key(r.VM)]
	// Version 0 is never issued (versions start at the hub's creation time):
	// a drift-only report from an agent enforcing its state file.
	if v == nil || v.desired == nil || r.Version == 0 || r.Version > v.desired.Version || r.Version < v.reportVer {
		h.mu.Unlock()
		return nil
	}
	v.reportVer = r.Version
	v.confirmed = map[string]bool{}
	for _, id := range r.Enforced {
		v.confirmed[id] = true
	}
	v.lastErr = r.Error
	enforced := slices.Clone(r.Enforced)
	h.mu.Unlock()
	if h.report == nil {
		return nil
	}
	return h.report(ctx, r.VM, enforced, r.Error)
}

// Close ends every subscription (their Closed channel closes).
func (h *Hub) Close() { h.closeOnce.Do(func() { close(h.closed) }) }
