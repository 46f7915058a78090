package agenthub

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

var host = inventory.VM{ID: "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/h", Cloud: inventory.Host, Provider: inventory.ProviderNftables}

func desired(ids ...string) jit.Desired {
	d := jit.Desired{VMID: host.ID, Guarded: []jit.GuardedPort{{Port: 22, Protocol: netrule.Tcp}}}
	for i, id := range ids {
		d.Grants = append(d.Grants, jit.DesiredGrant{GrantID: id, Port: 22, Protocol: netrule.Tcp,
			Source: jit.SourceFromAddr(netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)})), End: time.Now().Add(time.Hour)})
	}
	return d
}

func TestHubVersionsReportsAndSubscribers(t *testing.T) {
	ctx := context.Background()
	h := New()
	var reported [][]string
	h.SetReporter(func(_ context.Context, vm string, enforced []string, _ string) error {
		reported = append(reported, enforced)
		return nil
	})
	// No agent connected: Apply records and is pending.
	obs, err := h.Apply(ctx, host, desired("g1"))
	if err != nil || !obs.Pending || len(obs.Enforced) != 0 {
		t.Fatalf("Apply = %+v, %v", obs, err)
	}
	sub, err := h.Subscribe(ctx, host.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	<-sub.Changed()
	s1, ok := sub.Next()
	if !ok || len(s1.Grants) != 1 || s1.Grants[0].ID != "g1" || s1.Grants[0].Source != "198.18.0.1/32" {
		t.Fatalf("first snapshot %+v %v", s1, ok)
	}
	if _, ok := sub.Next(); ok {
		t.Fatal("the same version twice")
	}
	if _, err := h.Apply(ctx, host, desired("g1", "g2")); err != nil {
		t.Fatal(err)
	}
	<-sub.Changed()
	s2, _ := sub.Next()
	if s2.Version <= s1.Version || len(s2.Grants) != 2 {
		t.Fatalf("second snapshot %+v", s2)
	}
	// A report for s2, then a stale one for s1: the stale one is ignored.
	if err := h.Report(ctx, Report{VM: host.ID, Version: s2.Version, Enforced: []string{"g1", "g2"}}); err != nil {
		t.Fatal(err)
	}
	if err := h.Report(ctx, Report{VM: host.ID, Version: s1.Version, Enforced: []string{"g1"}}); err != nil {
		t.Fatal(err)
	}
	if err := h.Report(ctx, Report{VM: host.ID, Version: s2.Version + 100, Enforced: nil}); err != nil {
		t.Fatal(err)
	}
	if len(reported) != 1 || !slices.Equal(reported[0], []string{"g1", "g2"}) {
		t.Fatalf("reporter saw %v, want only [g1 g2]", reported)
	}
	// Apply now says what the agent confirmed, for the grants still desired.
	obs, _ = h.Apply(ctx, host, desired("g1", "g3"))
	if !obs.Pending || !slices.Equal(obs.Enforced, []string{"g1"}) {
		t.Fatalf("Apply after report = %+v, want pending with g1 enforced", obs)
	}
}

func TestHubCheckRejects(t *testing.T) {
	h := New()
	ctx := context.Background()
	bad := desired("g1")
	bad.Guarded[0].Port = 70000
	if err := h.Check(ctx, host, bad); err == nil {
		t.Fatal("port 70000 accepted")
	}
	bad = desired("g1")
	bad.Grants[0].Source = jit.Source{}
	if err := h.Check(ctx, host, bad); err == nil {
		t.Fatal("a grant without a source accepted")
	}
	sim := host
	sim.Provider = inventory.ProviderSim
	if err := h.Check(ctx, sim, desired()); err == nil {
		t.Fatal("a sim VM accepted")
	}
	if err := h.Check(ctx, host, desired("g1")); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.Latest(host.ID); ok {
		t.Fatal("Check recorded state")
	}
}
