package jit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/clock"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
	"github.com/drawbridge/drawbridge/internal/store/storetest"
)

const (
	vm1 = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"
	vm2 = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm2"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// fakeProvider records the desired state it was given per VM and can be
// told to fail.
type fakeProvider struct {
	mu       sync.Mutex
	desired  map[string]jit.Desired
	applies  int
	checkErr error
	applyErr error
}

func (f *fakeProvider) Check(_ context.Context, vm inventory.VM, d jit.Desired) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checkErr
}

func (f *fakeProvider) Apply(_ context.Context, vm inventory.VM, d jit.Desired) (jit.Observed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applies++
	if f.applyErr != nil {
		return jit.Observed{}, f.applyErr
	}
	if f.desired == nil {
		f.desired = map[string]jit.Desired{}
	}
	f.desired[strings.ToLower(vm.ID)] = d
	var obs jit.Observed
	for _, g := range d.Grants {
		obs.Enforced = append(obs.Enforced, g.GrantID)
	}
	return obs, nil
}

func (f *fakeProvider) last(vmID string) jit.Desired {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.desired[strings.ToLower(vmID)]
}

type fixture struct {
	svc   *jit.Service
	store storetest.Store
	clk   *clock.Fake
	prov  *fakeProvider
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureOn(t, memstore.New(), nil)
}

// newFixtureOn is newFixture on st, with the service on wrap(st) if wrap
// is set.
func newFixtureOn(t *testing.T, st storetest.Store, wrap func(storetest.Store) jit.Store) *fixture {
	t.Helper()
	var svcStore jit.Store = st
	if wrap != nil {
		svcStore = wrap(st)
	}
	ctx := context.Background()
	inv := inventory.Inventory{VMs: []inventory.VM{
		{ID: vm1, Name: "vm1", Cloud: inventory.Host, Provider: "fake"},
		{ID: vm2, Name: "vm2", Cloud: inventory.Host, Provider: "fake"},
	}}
	// Stored directly: the inventory validator only knows real provider names.
	if err := st.ObjectTx(ctx, func(o storeObjects) error {
		for _, vm := range inv.VMs {
			if err := o.PutObject(ctx, inventory.KindVM, inventory.Key(vm.ID), vm); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(t0)
	prov := &fakeProvider{}
	n := 0
	var mu sync.Mutex
	svc := jit.NewService(jit.Config{
		Store:     svcStore,
		Providers: jit.ProviderMap{"fake": prov},
		Clock:     clk,
		NewID: func() string {
			mu.Lock()
			defer mu.Unlock()
			n++
			return fmt.Sprintf("id%04d", n)
		},
	})
	return &fixture{svc: svc, store: st, clk: clk, prov: prov}
}

func policyFor(vmID string, ports ...jit.PortPolicy) jit.Policy {
	return jit.Policy{
		ID:              jit.PolicyID("s1", "rg1", "westeurope", "default"),
		Name:            "default",
		Location:        "westeurope",
		VirtualMachines: []jit.VMPolicy{{ID: vmID, Ports: ports}},
	}
}

func ssh(prefix string) jit.PortPolicy {
	return jit.PortPolicy{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: prefix, MaxRequestAccessDuration: "PT3H"}
}

func (f *fixture) put(t *testing.T, p jit.Policy) jit.Policy {
	t.Helper()
	out, err := f.svc.PutPolicy(context.Background(), p)
	if err != nil {
		t.Fatalf("PutPolicy: %v", err)
	}
	return out
}

func request(vmID string, port int, src string, d time.Duration) jit.InitiateInput {
	return jit.InitiateInput{VirtualMachines: []jit.InitiateVM{{ID: vmID, Ports: []jit.InitiatePort{
		{Number: port, Duration: d.String(), AllowedSourceAddressPrefix: src}}}}}
}

var alice = jit.Actor{Principal: "alice", Address: "198.18.0.7"}

func TestPutPolicyEnablesJIT(t *testing.T) {
	f := newFixture(t)
	p := f.put(t, policyFor(vm1, ssh("*")))
	if p.ProvisioningState != jit.ProvisioningSucceeded {
		t.Fatalf("provisioningState = %s", p.ProvisioningState)
	}
	d := f.prov.last(vm1)
	if len(d.Guarded) != 1 || d.Guarded[0].Port != 22 || d.Guarded[0].Protocol != "Tcp" {
		t.Fatalf("guarded = %+v", d.Guarded)
	}
}

func TestPutPolicyRejectsBadInputAndStoresNothing(t *testing.T) {
	cases := []struct {
		name  string
		p     jit.Policy
		field string
		kind  error
	}{
		{"port zero", policyFor(vm1, jit.PortPolicy{Number: 0, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}),
			"properties.virtualMachines[0].ports[0].number", jit.ErrInvalid},
		{"bad protocol", policyFor(vm1, jit.PortPolicy{Number: 22, Protocol: "ICMP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}),
			"properties.virtualMachines[0].ports[0].protocol", jit.ErrInvalid},
		{"both prefix fields", policyFor(vm1, jit.PortPolicy{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "*", AllowedSourceAddressPrefixes: []string{"10.0.0.0/8"}, MaxRequestAccessDuration: "PT3H"}),
			"properties.virtualMachines[0].ports[0].allowedSourceAddressPrefixes", jit.ErrInvalid},
		{"no prefix", policyFor(vm1, jit.PortPolicy{Number: 22, Protocol: "TCP", MaxRequestAccessDuration: "PT3H"}),
			"properties.virtualMachines[0].ports[0].allowedSourceAddressPrefix", jit.ErrInvalid},
		{"bad prefix", policyFor(vm1, jit.PortPolicy{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefixes: []string{"10.0.0.0/8", "10.1.2.3/8"}, MaxRequestAccessDuration: "PT3H"}),
			"properties.virtualMachines[0].ports[0].allowedSourceAddressPrefixes[1]", jit.ErrInvalid},
		{"duration too short", policyFor(vm1, jit.PortPolicy{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT4M"}),
			"properties.virtualMachines[0].ports[0].maxRequestAccessDuration", jit.ErrInvalid},
		{"duration too long", policyFor(vm1, jit.PortPolicy{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "P2D"}),
			"properties.virtualMachines[0].ports[0].maxRequestAccessDuration", jit.ErrInvalid},
		{"duration not a duration", policyFor(vm1, jit.PortPolicy{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "3x"}),
			"properties.virtualMachines[0].ports[0].maxRequestAccessDuration", jit.ErrInvalid},
		{"duration overflows", policyFor(vm1, jit.PortPolicy{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "P854016D"}),
			"properties.virtualMachines[0].ports[0].maxRequestAccessDuration", jit.ErrInvalid},
		{"unknown vm", policyFor("/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/nope", ssh("*")),
			"properties.virtualMachines[0].id", jit.ErrNotFound},
		{"vm id not a resource id", policyFor("vm1", ssh("*")),
			"properties.virtualMachines[0].id", jit.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			_, err := f.svc.PutPolicy(context.Background(), c.p)
			var fe *jit.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, c.kind) {
				t.Fatalf("err = %v; want %v on field %s", err, c.kind, c.field)
			}
			ps, _ := f.svc.ListPolicies(context.Background(), "/", "")
			if len(ps) != 0 || f.prov.applies != 0 {
				t.Fatalf("state changed: %d policies, %d applies", len(ps), f.prov.applies)
			}
		})
	}
}

func TestPutPolicyProviderCheckFailureStoresNothing(t *testing.T) {
	f := newFixture(t)
	f.prov.checkErr = errors.New("no NSG on the VM's NIC or subnet")
	_, err := f.svc.PutPolicy(context.Background(), policyFor(vm1, ssh("*")))
	if !errors.Is(err, jit.ErrConflict) || !strings.Contains(err.Error(), "no NSG") {
		t.Fatalf("err = %v", err)
	}
	if ps, _ := f.svc.ListPolicies(context.Background(), "/", ""); len(ps) != 0 {
		t.Fatalf("policy stored despite failed check")
	}
}

func TestVMInTwoPoliciesConflicts(t *testing.T) {
	f := newFixture(t)
	f.put(t, policyFor(vm1, ssh("*")))
	other := policyFor(vm1, ssh("*"))
	other.Name = "other"
	other.ID = jit.PolicyID("s1", "rg1", "westeurope", "other")
	_, err := f.svc.PutPolicy(context.Background(), other)
	if !errors.Is(err, jit.ErrConflict) {
		t.Fatalf("err = %v, want conflict", err)
	}
}

func TestInitiateOpensGrantAndValidates(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.put(t, policyFor(vm1, ssh("198.18.0.0/15")))

	// Caller's address is the default source.
	req, err := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 22, "", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Grants) != 1 {
		t.Fatalf("grants = %d", len(req.Grants))
	}
	g := req.Grants[0]
	if g.Source.String() != "198.18.0.7" || !g.EndTime.Equal(t0.Add(time.Hour)) || g.Status != jit.StatusInitiated || g.StatusReason != jit.ReasonUserRequested || !g.Applied {
		t.Fatalf("grant = %+v", g)
	}
	d := f.prov.last(vm1)
	if len(d.Grants) != 1 || d.Grants[0].GrantID != g.ID || d.Grants[0].Source.String() != "198.18.0.7" {
		t.Fatalf("desired grants = %+v", d.Grants)
	}

	bad := []struct {
		name  string
		in    jit.InitiateInput
		field string
		kind  error
	}{
		{"port not in policy", request(vm1, 3389, "198.18.0.7", time.Hour), "virtualMachines[0].ports[0].number", jit.ErrInvalid},
		{"source outside allowed", request(vm1, 22, "203.0.113.9", time.Hour), "virtualMachines[0].ports[0].allowedSourceAddressPrefix", jit.ErrForbidden},
		{"wider than allowed", request(vm1, 22, "198.16.0.0/12", time.Hour), "virtualMachines[0].ports[0].allowedSourceAddressPrefix", jit.ErrForbidden},
		{"bad source", request(vm1, 22, "198.18.0.300", time.Hour), "virtualMachines[0].ports[0].allowedSourceAddressPrefix", jit.ErrInvalid},
		{"too long", request(vm1, 22, "198.18.0.7", 3*time.Hour+time.Second), "virtualMachines[0].ports[0].duration", jit.ErrInvalid},
		{"vm not in policy", request(vm2, 22, "198.18.0.7", time.Hour), "virtualMachines[0].id", jit.ErrInvalid},
		{"past end", jit.InitiateInput{VirtualMachines: []jit.InitiateVM{{ID: vm1, Ports: []jit.InitiatePort{{Number: 22, EndTimeUtc: t0.Add(-time.Second)}}}}},
			"virtualMachines[0].ports[0].endTimeUtc", jit.ErrInvalid},
		{"no end", jit.InitiateInput{VirtualMachines: []jit.InitiateVM{{ID: vm1, Ports: []jit.InitiatePort{{Number: 22}}}}},
			"virtualMachines[0].ports[0].endTimeUtc", jit.ErrInvalid},
		{"end and duration", jit.InitiateInput{VirtualMachines: []jit.InitiateVM{{ID: vm1, Ports: []jit.InitiatePort{{Number: 22, EndTimeUtc: t0.Add(time.Minute), Duration: "PT1M"}}}}},
			"virtualMachines[0].ports[0].duration", jit.ErrInvalid},
		{"bad duration", jit.InitiateInput{VirtualMachines: []jit.InitiateVM{{ID: vm1, Ports: []jit.InitiatePort{{Number: 22, Duration: "soon"}}}}},
			"virtualMachines[0].ports[0].duration", jit.ErrInvalid},
		{"same port twice", jit.InitiateInput{VirtualMachines: []jit.InitiateVM{{ID: vm1, Ports: []jit.InitiatePort{{Number: 22, Duration: "1m"}, {Number: 22, Duration: "1m"}}}}},
			"virtualMachines[0].ports[1].number", jit.ErrInvalid},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			before, _ := f.svc.ListGrants(ctx, jit.GrantFilter{})
			_, err := f.svc.Initiate(ctx, alice, p.ID, c.in)
			var fe *jit.FieldError
			if !errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, c.kind) {
				t.Fatalf("err = %v; want %v on %s", err, c.kind, c.field)
			}
			after, _ := f.svc.ListGrants(ctx, jit.GrantFilter{})
			if len(after) != len(before) || after[0].Status != jit.StatusInitiated {
				t.Fatalf("state changed by a refused request")
			}
		})
	}
}

func TestNarrowerSourceThanPolicyAccepted(t *testing.T) {
	f := newFixture(t)
	p := f.put(t, policyFor(vm1, jit.PortPolicy{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefixes: []string{"2001:2::/48", "198.18.0.0/15"}, MaxRequestAccessDuration: "PT1H"}))
	for _, src := range []string{"198.18.4.0/24", "2001:2::1", "2001:2:0:1::/64"} {
		if _, err := f.svc.Initiate(context.Background(), alice, p.ID, request(vm1, 22, src, time.Minute)); err != nil {
			t.Errorf("source %s: %v", src, err)
		}
	}
}

func TestNewerRequestEndsOlderGrant(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.put(t, policyFor(vm1, ssh("*")))
	first, err := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 22, "198.18.0.1", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute)
	second, err := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 22, "198.18.0.2", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	old, _ := f.svc.GetGrant(ctx, first.Grants[0].ID)
	if old.Status != jit.StatusRevoked || old.StatusReason != jit.ReasonNewerRequestInitiated || !old.EndedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("old grant = %+v", old)
	}
	d := f.prov.last(vm1)
	if len(d.Grants) != 1 || d.Grants[0].GrantID != second.Grants[0].ID {
		t.Fatalf("desired = %+v", d.Grants)
	}
	active, _ := f.svc.ListGrants(ctx, jit.GrantFilter{VMID: vm1, ActiveOnly: true})
	if len(active) != 1 {
		t.Fatalf("active grants = %d, want 1", len(active))
	}
}

func TestRevoke(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.put(t, policyFor(vm1, ssh("*")))
	req, _ := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 22, "198.18.0.1", time.Hour))
	g, err := f.svc.Revoke(ctx, alice, req.Grants[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if g.Status != jit.StatusRevoked || g.StatusReason != jit.ReasonUserRequested {
		t.Fatalf("grant = %+v", g)
	}
	if d := f.prov.last(vm1); len(d.Grants) != 0 || len(d.Guarded) != 1 {
		t.Fatalf("desired after revoke = %+v", d)
	}
	if _, err := f.svc.Revoke(ctx, alice, req.Grants[0].ID); !errors.Is(err, jit.ErrConflict) {
		t.Fatalf("second revoke: %v", err)
	}
	if _, err := f.svc.Revoke(ctx, alice, "nope"); !errors.Is(err, jit.ErrNotFound) {
		t.Fatalf("unknown grant: %v", err)
	}
}

func TestExpireDue(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.put(t, policyFor(vm1, ssh("*")))
	short, _ := f.svc.Initiate(ctx, alice, p.ID, jit.InitiateInput{VirtualMachines: []jit.InitiateVM{{ID: vm1, Ports: []jit.InitiatePort{{Number: 22, Duration: "1s", AllowedSourceAddressPrefix: "198.18.0.1"}}}}})
	if n, _ := f.svc.ExpireDue(ctx); n != 0 {
		t.Fatalf("expired %d before the end time", n)
	}
	f.clk.Advance(time.Second)
	n, err := f.svc.ExpireDue(ctx)
	if err != nil || n != 1 {
		t.Fatalf("ExpireDue = %d, %v", n, err)
	}
	g, _ := f.svc.GetGrant(ctx, short.Grants[0].ID)
	if g.Status != jit.StatusRevoked || g.StatusReason != jit.ReasonExpired || g.Applied {
		t.Fatalf("grant = %+v", g)
	}
	if d := f.prov.last(vm1); len(d.Grants) != 0 {
		t.Fatalf("desired still has grants: %+v", d.Grants)
	}
	if n, _ := f.svc.ExpireDue(ctx); n != 0 {
		t.Fatalf("expired again: %d", n)
	}
}

// The expiry job sleeps until the next end time and no longer: with a fake
// clock, nothing happens until the clock reaches it.
func TestRunExpiryWakesAtEndTime(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := f.put(t, policyFor(vm1, ssh("*")))
	done := make(chan struct{})
	go func() { f.svc.RunExpiry(ctx, func(err error) { t.Error(err) }); close(done) }()
	req, err := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 22, "198.18.0.1", 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	id := req.Grants[0].ID
	status := func() jit.Status { g, _ := f.svc.GetGrant(ctx, id); return g.Status }
	time.Sleep(50 * time.Millisecond)
	f.clk.Advance(9 * time.Second)
	time.Sleep(50 * time.Millisecond)
	if status() != jit.StatusInitiated {
		t.Fatal("grant ended before its end time")
	}
	deadline := time.Now().Add(5 * time.Second)
	for status() != jit.StatusRevoked {
		// Keep nudging the fake clock forward to the end time; the job may
		// have armed its timer after the first Advance.
		f.clk.Set(t0.Add(10 * time.Second))
		if time.Now().After(deadline) {
			t.Fatal("grant not expired by the job")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
}

// A request only wakes the sleeping expiry job when it ends before the job's
// deadline; one that does must still be expired on time, not at the later
// deadline the job went to sleep with.
func TestRunExpiryWokenByEarlierEndTime(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := policyFor(vm1, ssh("*"))
	p.VirtualMachines = append(p.VirtualMachines, jit.VMPolicy{ID: vm2, Ports: []jit.PortPolicy{ssh("*")}})
	p = f.put(t, p)
	done := make(chan struct{})
	go func() { f.svc.RunExpiry(ctx, func(err error) { t.Error(err) }); close(done) }()
	long, err := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 22, "198.18.0.1", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Let the job go to sleep until the hour-long grant's end.
	time.Sleep(50 * time.Millisecond)
	short, err := f.svc.Initiate(ctx, alice, p.ID, request(vm2, 22, "198.18.0.2", 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	status := func(id string) jit.Status { g, _ := f.svc.GetGrant(ctx, id); return g.Status }
	deadline := time.Now().Add(5 * time.Second)
	for status(short.Grants[0].ID) != jit.StatusRevoked {
		f.clk.Set(t0.Add(10 * time.Second))
		if time.Now().After(deadline) {
			t.Fatal("the shorter grant was not expired at its end time")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if status(long.Grants[0].ID) != jit.StatusInitiated {
		t.Fatal("the hour-long grant ended early")
	}
	cancel()
	<-done
}

func TestApplyFailureIsRecordedAndRetried(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.put(t, policyFor(vm1, ssh("*")))
	f.prov.mu.Lock()
	f.prov.applyErr = errors.New("netlink: operation not permitted")
	f.prov.mu.Unlock()
	req, err := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 22, "198.18.0.1", time.Hour))
	if err != nil {
		t.Fatalf("request should stand even if the provider fails: %v", err)
	}
	g := req.Grants[0]
	if g.Applied || !strings.Contains(g.ProviderError, "operation not permitted") {
		t.Fatalf("grant = %+v", g)
	}
	f.prov.mu.Lock()
	f.prov.applyErr = nil
	f.prov.mu.Unlock()
	failed, err := f.svc.ReconcileAll(ctx)
	if err != nil || len(failed) != 0 {
		t.Fatalf("ReconcileAll: %v %v", failed, err)
	}
	g, _ = f.svc.GetGrant(ctx, g.ID)
	if !g.Applied || g.ProviderError != "" {
		t.Fatalf("after retry grant = %+v", g)
	}
}

func TestDeletePolicyDisablesJITAndEndsGrants(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.put(t, policyFor(vm1, ssh("*")))
	req, _ := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 22, "198.18.0.1", time.Hour))
	if err := f.svc.DeletePolicy(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	g, _ := f.svc.GetGrant(ctx, req.Grants[0].ID)
	if g.Status != jit.StatusRevoked || g.StatusReason != jit.ReasonPolicyRemoved {
		t.Fatalf("grant = %+v", g)
	}
	if d := f.prov.last(vm1); len(d.Guarded) != 0 || len(d.Grants) != 0 {
		t.Fatalf("desired after delete = %+v", d)
	}
	if err := f.svc.DeletePolicy(ctx, p.ID); !errors.Is(err, jit.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestPolicyUpdateDroppingPortEndsItsGrants(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rdp := jit.PortPolicy{Number: 3389, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}
	p := f.put(t, policyFor(vm1, ssh("*"), rdp))
	req, _ := f.svc.Initiate(ctx, alice, p.ID, jit.InitiateInput{VirtualMachines: []jit.InitiateVM{{ID: vm1, Ports: []jit.InitiatePort{
		{Number: 22, Duration: "1h", AllowedSourceAddressPrefix: "198.18.0.1"}, {Number: 3389, Duration: "1h", AllowedSourceAddressPrefix: "198.18.0.1"}}}}})
	f.put(t, policyFor(vm1, ssh("*")))
	for _, g := range req.Grants {
		got, _ := f.svc.GetGrant(ctx, g.ID)
		wantActive := g.Port == 22
		if (got.Status == jit.StatusInitiated) != wantActive {
			t.Errorf("port %d: status %s %s", g.Port, got.Status, got.StatusReason)
		}
	}
	d := f.prov.last(vm1)
	if len(d.Guarded) != 1 || len(d.Grants) != 1 || d.Grants[0].Port != 22 {
		t.Fatalf("desired = %+v", d)
	}
}

func TestConcurrentRequestsSameVMPortLeaveOneActive(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.put(t, policyFor(vm1, ssh("*")))
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 22, fmt.Sprintf("198.18.0.%d", i+1), time.Hour)); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	active, _ := f.svc.ListGrants(ctx, jit.GrantFilter{VMID: vm1, ActiveOnly: true})
	all, _ := f.svc.ListGrants(ctx, jit.GrantFilter{VMID: vm1})
	if len(active) != 1 || len(all) != 20 {
		t.Fatalf("active %d, all %d", len(active), len(all))
	}
	if d := f.prov.last(vm1); len(d.Grants) != 1 || d.Grants[0].GrantID != active[0].ID {
		t.Fatalf("provider holds %+v, store's active grant is %s", d.Grants, active[0].ID)
	}
}
