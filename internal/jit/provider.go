package jit

import (
	"context"
	"net/netip"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Desired is the firewall state drawbridge wants on one VM: the guarded
// ports denied to new inbound connections, and one allowance per active grant.
type Desired struct {
	VMID    string
	Guarded []GuardedPort
	Grants  []DesiredGrant
}

// GuardedPort is a port JIT protects.
type GuardedPort struct {
	Port     int
	Protocol netrule.Protocol
}

// DesiredGrant is one allowance the firewall must hold until End.
type DesiredGrant struct {
	GrantID  string
	Port     int
	Protocol netrule.Protocol
	Source   Source
	End      time.Time
}

// Observed is what a provider reports after Apply.
type Observed struct {
	// Enforced lists the grant IDs the firewall enforces now. A provider that
	// applies asynchronously (an agent) reports only what it has confirmed.
	Enforced []string
	// Pending is true when the provider has accepted the desired state but
	// not yet confirmed it (the agent will report later).
	Pending bool
	// Drift lists what the provider found changed behind its back on
	// objects it owns (a deny rule deleted, a revoked permission re-added)
	// and restored in this Apply. The service audits it as one "drift"
	// record and one EventDrift (see recordProviderDrift). A provider may
	// return it with an error when the repair landed before the failure.
	Drift []DriftRepair
	// ConnectTo maps a grant ID to the address and port its requester
	// connects to when that is not the VM's own (a DNAT rule on the
	// firewall in front of it listens there, maybe on another port than
	// the granted one). Grants not in it are reached at the VM.
	ConnectTo map[string]netip.AddrPort
}

// DriftRepair is one drift a provider repaired: what it found and what it
// restored, in words for the audit log and the webhook.
type DriftRepair struct {
	Found    string
	Restored string
	// Port and Protocol, if set, are the guarded port the drift was on;
	// the event carries them when every repair of one Apply shares them.
	Port     int
	Protocol string
}

// Provider changes one kind of firewall. Every implementation must:
//   - Apply idempotently: applying the same Desired twice changes nothing the
//     second time;
//   - touch only what it created for JIT (its deny rules, allow rules,
//     security groups or nftables table) and the rules JIT had to set aside
//     on enable, which it restores exactly on disable;
//   - treat a Desired with no Guarded ports as "JIT disabled": remove all of
//     its own objects and restore what it set aside.
type Provider interface {
	// Check reports whether Apply(desired) would succeed, changing nothing.
	// The service may call it inside a store transaction, so it must not
	// use the store (a TxProvider is checked by ApplyTx instead).
	Check(ctx context.Context, vm inventory.VM, desired Desired) error
	// Apply makes the VM's firewall match desired.
	Apply(ctx context.Context, vm inventory.VM, desired Desired) (Observed, error)
}

// TxProvider is a Provider whose firewall state lives in the store itself
// (the simulated network). The service applies it inside the transaction
// that changes grants and policies, so both commit together or not at all.
// ApplyTx writes nothing to objs when it returns an error.
type TxProvider interface {
	Provider
	ApplyTx(ctx context.Context, objs store.Objects, vm inventory.VM, desired Desired) (Observed, error)
}

// Providers returns the provider for a VM's provider name.
type Providers interface {
	For(name string) (Provider, bool)
}

// ProviderMap is a Providers backed by a map.
type ProviderMap map[string]Provider

func (m ProviderMap) For(name string) (Provider, bool) {
	p, ok := m[name]
	return p, ok
}
