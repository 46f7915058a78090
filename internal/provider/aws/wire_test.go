package aws_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/cloudsim/ec2sim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	awsprov "github.com/drawbridge/drawbridge/internal/provider/aws"
	"github.com/drawbridge/drawbridge/internal/provider/aws/conformance"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
)

// wireWorld is a conformance world: the aws provider on the real SDK,
// talking EC2 Query over HTTP to the simulator.
type wireWorld struct {
	sim   *ec2sim.Server
	url   string
	store *memstore.Store
	prov  *awsprov.Provider
	vms   map[string]conformance.VM
}

func newWireWorld(t *testing.T, spec conformance.Spec) *wireWorld {
	t.Helper()
	// An account whose rules-per-group quota was raised to 1,000, so an
	// all-traffic rule can be carved (TestRuleQuota covers the default).
	sim := ec2sim.New(ec2sim.Options{AccessKey: "AKIDTEST", SecretKey: "secret", Region: "us-east-1", RulesPerGroup: 1000})
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	w := &wireWorld{sim: sim, url: ts.URL, store: memstore.New(), vms: map[string]conformance.VM{}}
	w.prov = w.newProvider()
	for _, g := range spec.Groups {
		sg := ec2sim.Group{ID: g.ID, Name: g.ID + "-name", Description: "user group", VpcID: "vpc-1"}
		for _, r := range g.Rules {
			sg.Ingress = append(sg.Ingress, toSimRule(r))
		}
		sim.PutGroup(sg)
	}
	owner := map[string]string{}
	for _, vm := range spec.VMs {
		w.vms[vm.Name] = vm
		for _, e := range vm.ENIs {
			owner[e] = vm.Name
		}
		sim.PutInstance(ec2sim.Instance{ID: "i-" + vm.Name, VpcID: "vpc-1", ENIs: vm.ENIs})
	}
	for _, e := range spec.ENIs {
		sim.PutENI(ec2sim.ENI{ID: e.ID, VpcID: "vpc-1", SubnetID: "subnet-1", InstanceID: "i-" + owner[e.ID], Groups: e.Groups})
	}
	return w
}

// newProvider is a fresh provider (as after a restart) over the same store.
func (w *wireWorld) newProvider() *awsprov.Provider {
	c := awsprov.NewEndpointClient(w.url, "us-east-1", "AKIDTEST", "secret", awsprov.RetryOptions{MaxAttempts: 40, MaxBackoff: 2 * time.Millisecond})
	p := awsprov.New(c, w.store)
	p.MaxRulesPerGroup = 1000
	return p
}

func toSimRule(r conformance.Rule) ec2sim.Rule {
	x := ec2sim.Rule{Protocol: r.Proto, From: int32(r.From), To: int32(r.To), Description: r.Desc}
	if strings.Contains(r.CIDR, ":") {
		x.CIDRv6 = r.CIDR
	} else {
		x.CIDRv4 = r.CIDR
	}
	return x
}

func (w *wireWorld) Provider() jit.Provider { return w.prov }

func (w *wireWorld) VM(name string) inventory.VM {
	return inventory.VM{ID: "/aws/accounts/123456789012/regions/us-east-1/instances/i-" + name, Name: name, Cloud: inventory.AWS,
		Provider: inventory.ProviderAWS, InstanceID: "i-" + name, ENIs: w.vms[name].ENIs}
}

func (w *wireWorld) State(t *testing.T) conformance.State {
	snap := w.sim.Snapshot()
	groups := map[string][]conformance.Rule{}
	for id, g := range snap.Groups {
		rs := []conformance.Rule{}
		for _, r := range g.Ingress {
			rs = append(rs, conformance.Rule{Proto: r.Protocol, From: int(r.From), To: int(r.To), CIDR: r.CIDRv4 + r.CIDRv6, Desc: r.Description})
		}
		groups[id] = rs
	}
	enis := map[string][]string{}
	for id, e := range snap.ENIs {
		enis[id] = e.Groups
	}
	return conformance.NewState(groups, enis)
}

func (w *wireWorld) AddRule(t *testing.T, groupID string, r conformance.Rule) {
	w.sim.AddIngress(groupID, toSimRule(r))
}

func (w *wireWorld) Faults(on bool) {
	if !on {
		w.sim.SetFaults(ec2sim.Faults{})
		return
	}
	w.sim.SetFaults(ec2sim.Faults{ThrottleRate: 0.2, ErrorRate: 0.1, ConsistencyDelay: 30 * time.Millisecond, Seed: 42})
}

func (w *wireWorld) NoRoom(err error) bool { return errors.Is(err, awsprov.ErrNoRoom) }

func TestConformanceThroughTheWire(t *testing.T) {
	conformance.Run(t, func(t *testing.T, spec conformance.Spec) conformance.World { return newWireWorld(t, spec) })
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func conformanceSSH() []jit.GuardedPort { return []jit.GuardedPort{{Port: 22, Protocol: netrule.Tcp}} }

func desired(vm inventory.VM, guarded []jit.GuardedPort, grants int) jit.Desired {
	d := jit.Desired{VMID: vm.ID, Guarded: guarded}
	for i := 0; i < grants; i++ {
		d.Grants = append(d.Grants, jit.DesiredGrant{GrantID: fmt.Sprintf("g-%d", i), Port: 22, Protocol: netrule.Tcp,
			Source: jit.SourceFromAddr(netip.MustParseAddr("198.51.100.7")), End: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)})
	}
	return d
}

// TestDriftIsReported: a revoked rule re-added behind drawbridge's back is
// revoked again on the next reconcile and reported in Observed.Drift.
func TestDriftIsReported(t *testing.T) {
	w := newWireWorld(t, conformance.StandardSpec())
	vm := w.VM("web")
	obs, err := w.prov.Apply(context.Background(), vm, desired(vm, conformanceSSH(), 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(obs.Drift) != 0 {
		t.Fatalf("drift reported on enable: %v", obs.Drift)
	}
	w.AddRule(t, "sg-0web", conformance.Rule{Proto: "tcp", From: 22, To: 22, CIDR: "203.0.113.0/24", Desc: "IaC"})
	obs, err = w.prov.Apply(context.Background(), vm, desired(vm, conformanceSSH(), 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(obs.Drift) != 1 || !strings.Contains(obs.Drift[0].Found, "sg-0web") || !strings.Contains(obs.Drift[0].Found, "tcp 22-22 from 203.0.113.0/24") ||
		!strings.Contains(obs.Drift[0].Restored, "revoked tcp 22-22 from 203.0.113.0/24") {
		t.Fatalf("drift reports %+v", obs.Drift)
	}
	if w.State(t).Allows([]string{"eni-0web0"}, "203.0.113.5", "tcp", 22) {
		t.Fatal("drift not repaired")
	}
	if obs, err := w.prov.Apply(context.Background(), vm, desired(vm, conformanceSSH(), 0)); err != nil || len(obs.Drift) != 0 {
		t.Fatalf("a repaired group reported again: %+v, %v", obs.Drift, err)
	}
}

// TestRuleQuota: with EC2's default quota (60 rules per group), carving a
// port out of an all-traffic rule does not fit; Check and Apply refuse it
// with ErrNoRoom and change nothing. A group whose carve fits is fine.
func TestRuleQuota(t *testing.T) {
	sim := ec2sim.New(ec2sim.Options{AccessKey: "AKIDTEST", Region: "us-east-1", RulesPerGroup: 60})
	ts := httptest.NewServer(sim)
	defer ts.Close()
	sim.PutGroup(ec2sim.Group{ID: "sg-0all", Name: "all", Description: "d", VpcID: "vpc-1", Ingress: []ec2sim.Rule{{Protocol: "-1", From: -1, To: -1, CIDRv4: "10.0.0.0/8"}}})
	sim.PutGroup(ec2sim.Group{ID: "sg-0ssh", Name: "ssh", Description: "d", VpcID: "vpc-1", Ingress: []ec2sim.Rule{{Protocol: "tcp", From: 0, To: 65535, CIDRv4: "10.0.0.0/8"}}})
	sim.PutENI(ec2sim.ENI{ID: "eni-0a", VpcID: "vpc-1", InstanceID: "i-a", Groups: []string{"sg-0all"}})
	sim.PutENI(ec2sim.ENI{ID: "eni-0b", VpcID: "vpc-1", InstanceID: "i-b", Groups: []string{"sg-0ssh"}})
	p := awsprov.New(awsprov.NewEndpointClient(ts.URL, "us-east-1", "AKIDTEST", "s", awsprov.RetryOptions{MaxAttempts: 3}), memstore.New())
	a := inventory.VM{ID: "/subscriptions/aws-1/resourceGroups/r/providers/AWS.EC2/instances/i-a", Cloud: inventory.AWS, Provider: "aws", InstanceID: "i-a", ENIs: []string{"eni-0a"}}
	b := inventory.VM{ID: "/subscriptions/aws-1/resourceGroups/r/providers/AWS.EC2/instances/i-b", Cloud: inventory.AWS, Provider: "aws", InstanceID: "i-b", ENIs: []string{"eni-0b"}}
	before := sim.Snapshot()
	if err := p.Check(context.Background(), a, desired(a, conformanceSSH(), 0)); !errors.Is(err, awsprov.ErrNoRoom) {
		t.Fatalf("Check: %v", err)
	}
	if _, err := p.Apply(context.Background(), a, desired(a, conformanceSSH(), 0)); !errors.Is(err, awsprov.ErrNoRoom) {
		t.Fatalf("Apply: %v", err)
	}
	if g, _ := sim.Group("sg-0all"); !ec2sim.SameRules(g.Ingress, before.Groups["sg-0all"].Ingress) {
		t.Fatalf("refused enable changed the group: %+v", g.Ingress)
	}
	if _, err := p.Apply(context.Background(), b, desired(b, conformanceSSH(), 0)); err != nil {
		t.Fatalf("a carve that fits: %v", err)
	}
	if g, _ := sim.Group("sg-0ssh"); len(g.Ingress) != 2 {
		t.Fatalf("tcp 0-65535 minus 22 should be two rules: %+v", g.Ingress)
	}
}
