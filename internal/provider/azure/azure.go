// Package azure owns the Azure provider: a jit.Provider that enforces JIT on
// real network security groups through Azure Resource Manager with the
// official SDK (azcore, azidentity, armnetwork).
//
// It has the simulated provider's semantics exactly, because it runs the
// simulated provider's placement on the NSGs it reads: for one Apply it
// reads the VM's NICs, their subnets and every NSG on the path from ARM,
// lets internal/provider/sim reconcile in-memory copies, and writes the
// difference back as individual securityRules creates and deletes. It never
// PUTs a whole NSG, so a person editing other rules of the same NSG at the
// same time loses nothing; it only ever writes rules named
// sim.RulePrefix... and refuses a plan that would touch any other.
//
// Throttling (429 + Retry-After) and transient failures are retried by the
// SDK's retry policy; long-running writes are polled by the SDK's poller.
// Apply is level-triggered: it reads the cloud every time, so a deny rule
// someone deleted (drift) is re-created by the next Apply.
package azure

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
)

// Config configures the provider.
type Config struct {
	// Credential authenticates to ARM. Nil: azidentity's
	// DefaultAzureCredential (environment, workload identity, managed
	// identity, Azure CLI).
	Credential azcore.TokenCredential
	// ClientOptions for every SDK client (cloud, transport, retry). Nil:
	// public cloud, with retries suited to ARM throttling (8 tries, up to a
	// minute apart, Retry-After honoured).
	ClientOptions *arm.ClientOptions
	// PollFrequency is how often a long-running write is polled when ARM
	// sends no Retry-After (default 2s; the SDK's floor is 1s outside tests).
	PollFrequency time.Duration
}

// Provider is the Azure provider. It is safe for concurrent use.
type Provider struct {
	cfg Config

	mu      sync.Mutex
	clients map[string]*armnetwork.ClientFactory // by subscription
	locks   nsgLocks
	drift   baselines
	// dnatDrift: the same for DNAT rules on classic firewalls.
	dnatDrift dnatBaselines
	homes     dnatHomes // firewalls that may hold each VM's DNAT rules (relink.go)
}

var _ jit.Provider = (*Provider)(nil)

// DefaultClientOptions are the client options used when Config has none.
func DefaultClientOptions() *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: policy.ClientOptions{
		Retry: policy.RetryOptions{MaxRetries: 8, RetryDelay: 2 * time.Second, MaxRetryDelay: time.Minute},
	}}
}

// New returns a provider. Without a credential it builds
// DefaultAzureCredential, which fails only if no source is configured at
// all when a token is first needed.
func New(cfg Config) (*Provider, error) {
	if cfg.ClientOptions == nil {
		cfg.ClientOptions = DefaultClientOptions()
	}
	if cfg.Credential == nil {
		cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: cfg.ClientOptions.ClientOptions})
		if err != nil {
			return nil, fmt.Errorf("azure provider: credential: %w", err)
		}
		cfg.Credential = cred
	}
	if cfg.PollFrequency <= 0 {
		cfg.PollFrequency = 2 * time.Second
	}
	return &Provider{cfg: cfg, clients: map[string]*armnetwork.ClientFactory{}}, nil
}

func (p *Provider) factory(sub string) (*armnetwork.ClientFactory, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, ok := p.clients[sub]; ok {
		return f, nil
	}
	f, err := armnetwork.NewClientFactory(sub, p.cfg.Credential, p.cfg.ClientOptions)
	if err != nil {
		return nil, err
	}
	p.clients[sub] = f
	return f, nil
}

func (p *Provider) poll() *runtime.PollUntilDoneOptions {
	return &runtime.PollUntilDoneOptions{Frequency: p.cfg.PollFrequency}
}

// Check reports whether Apply(vm, desired) would succeed, writing nothing.
func (p *Provider) Check(ctx context.Context, vm inventory.VM, desired jit.Desired) error {
	_, err := p.plan(ctx, vm, desired)
	return err
}

// Apply makes the VM's NSG rules in Azure match desired. On error some
// writes may have landed; the next Apply (the reconcile) converges, since
// it plans from what Azure holds then.
func (p *Provider) Apply(ctx context.Context, vm inventory.VM, desired jit.Desired) (jit.Observed, error) {
	pl, err := p.apply(ctx, vm, desired)
	if err != nil {
		return jit.Observed{}, err
	}
	drift := p.drift.settle(vm.ID, pl.found, pl.want)
	if len(pl.strayIDs) > 0 || pl.fwID == "" {
		p.dnatDrift.forget(vm.ID) // moved: the old baseline is another firewall's
	}
	p.homes.settle(vm.ID, pl.fwID, len(pl.fwWant) > 0)
	if pl.fwID != "" {
		drift = append(drift, p.dnatDrift.settle(vm.ID, pl.fwID, pl.fwFound, pl.fwWant)...)
	}
	return jit.Observed{Enforced: pl.enforced, Drift: drift, ConnectTo: pl.connectTo}, nil
}

// notFound reports whether err is ARM's 404.
func notFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == 404
}
