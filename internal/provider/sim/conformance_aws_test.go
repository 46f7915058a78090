package sim_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/aws/conformance"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
)

// simWorld is a conformance world for the simulated provider's AWS half.
type simWorld struct {
	st   *memstore.Store
	prov *sim.Provider
	vms  map[string]inventory.VM
}

func newSimWorld(t *testing.T, spec conformance.Spec) conformance.World {
	w := &simWorld{st: memstore.New(), vms: map[string]inventory.VM{}}
	w.prov = sim.New(w.st)
	ctx := context.Background()
	err := w.st.ObjectTx(ctx, func(o store.Objects) error {
		for _, g := range spec.Groups {
			sg := netrule.SecurityGroup{GroupID: g.ID, GroupName: g.ID + "-name", VpcID: "vpc-1"}
			for _, r := range g.Rules {
				sg.IPPermissions = append(sg.IPPermissions, toPerm(r))
			}
			if err := o.PutObject(ctx, inventory.KindSecurityGroup, inventory.Key(g.ID), sg); err != nil {
				return err
			}
		}
		for _, e := range spec.ENIs {
			if err := o.PutObject(ctx, inventory.KindENI, inventory.Key(e.ID), inventory.ENI{ID: e.ID, SecurityGroups: e.Groups}); err != nil {
				return err
			}
		}
		for _, v := range spec.VMs {
			vm := inventory.VM{ID: "/aws/instances/i-" + v.Name, Name: v.Name, Cloud: inventory.AWS, Provider: inventory.ProviderSim, InstanceID: "i-" + v.Name, ENIs: v.ENIs}
			w.vms[v.Name] = vm
			if err := o.PutObject(ctx, inventory.KindVM, inventory.Key(vm.ID), vm); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func toPerm(r conformance.Rule) netrule.IPPermission {
	p := netrule.IPPermission{IPProtocol: r.Proto, FromPort: r.From, ToPort: r.To}
	if strings.Contains(r.CIDR, ":") {
		p.IPv6Ranges = []netrule.IPv6Range{{CidrIPv6: r.CIDR, Description: r.Desc}}
	} else {
		p.IPRanges = []netrule.IPRange{{CidrIP: r.CIDR, Description: r.Desc}}
	}
	return p
}

func (w *simWorld) Provider() jit.Provider      { return w.prov }
func (w *simWorld) VM(name string) inventory.VM { return w.vms[name] }
func (w *simWorld) Faults(bool)                 {}
func (w *simWorld) NoRoom(err error) bool       { return errors.Is(err, sim.ErrNoRoom) }
func (w *simWorld) AddRule(t *testing.T, id string, r conformance.Rule) {
	ctx := context.Background()
	err := w.st.ObjectTx(ctx, func(o store.Objects) error {
		var sg netrule.SecurityGroup
		if err := o.GetObject(ctx, inventory.KindSecurityGroup, inventory.Key(id), &sg); err != nil {
			return err
		}
		sg.IPPermissions = append(sg.IPPermissions, toPerm(r))
		return o.PutObject(ctx, inventory.KindSecurityGroup, inventory.Key(id), sg)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (w *simWorld) State(t *testing.T) conformance.State {
	ctx := context.Background()
	groups := map[string][]conformance.Rule{}
	enis := map[string][]string{}
	err := w.st.ObjectTx(ctx, func(o store.Objects) error {
		err := o.ListObjects(ctx, inventory.KindSecurityGroup, func(_ string, body []byte) error {
			var sg netrule.SecurityGroup
			if err := json.Unmarshal(body, &sg); err != nil {
				return err
			}
			rs := []conformance.Rule{}
			for _, p := range sg.IPPermissions {
				proto, from, to := strings.ToLower(p.IPProtocol), p.FromPort, p.ToPort
				if proto == "-1" || (proto != "tcp" && proto != "udp" && proto != "icmp" && proto != "icmpv6") {
					from, to = -1, -1
				}
				for _, r := range p.IPRanges {
					rs = append(rs, conformance.Rule{Proto: proto, From: from, To: to, CIDR: r.CidrIP, Desc: r.Description})
				}
				for _, r := range p.IPv6Ranges {
					rs = append(rs, conformance.Rule{Proto: proto, From: from, To: to, CIDR: r.CidrIPv6, Desc: r.Description})
				}
			}
			groups[sg.GroupID] = rs
			return nil
		})
		if err != nil {
			return err
		}
		return o.ListObjects(ctx, inventory.KindENI, func(_ string, body []byte) error {
			var e inventory.ENI
			if err := json.Unmarshal(body, &e); err != nil {
				return err
			}
			enis[e.ID] = e.SecurityGroups
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return conformance.NewState(groups, enis)
}

func TestConformanceSim(t *testing.T) {
	conformance.Run(t, newSimWorld)
}

// TestAllTrafficCarveKeepsOtherProtocols checks with netrule's own
// evaluation that carving tcp/22 out of an all-traffic permission keeps
// every other IP protocol (GRE, ESP) and port, and closes only tcp/22.
func TestAllTrafficCarveKeepsOtherProtocols(t *testing.T) {
	spec := conformance.Spec{
		Groups: []conformance.Group{{ID: "sg-all", Rules: []conformance.Rule{{Proto: "-1", From: -1, To: -1, CIDR: "192.0.2.0/24"}, {Proto: "-1", From: -1, To: -1, CIDR: "2001:db8::/32"}}}},
		ENIs:   []conformance.ENI{{ID: "eni-1", Groups: []string{"sg-all"}}},
		VMs:    []conformance.VM{{Name: "vm", ENIs: []string{"eni-1"}}},
	}
	w := newSimWorld(t, spec).(*simWorld)
	v := w.VM("vm")
	if _, err := w.prov.Apply(context.Background(), v, jit.Desired{VMID: v.ID, Guarded: []jit.GuardedPort{{Port: 22, Protocol: netrule.Tcp}}}); err != nil {
		t.Fatal(err)
	}
	var sg netrule.SecurityGroup
	if err := w.st.ObjectTx(context.Background(), func(o store.Objects) error {
		return o.GetObject(context.Background(), inventory.KindSecurityGroup, "sg-all", &sg)
	}); err != nil {
		t.Fatal(err)
	}
	c, err := netrule.CompileSecurityGroup(sg)
	if err != nil {
		t.Fatalf("the carved group is not valid EC2: %v", err)
	}
	for _, src := range []string{"192.0.2.7", "2001:db8::7"} {
		q := func(proto netrule.Protocol, port int) bool {
			a := netip.MustParseAddr(src)
			return netrule.EvaluateAWS([]*netrule.CompiledSG{c}, netrule.Query{Port: port, Protocol: proto, Source: netrule.AddressSource(a)}).Allowed
		}
		if q(netrule.Tcp, 22) {
			t.Errorf("%s: tcp/22 still allowed", src)
		}
		for _, c := range []struct {
			proto netrule.Protocol
			port  int
		}{{netrule.Tcp, 21}, {netrule.Tcp, 23}, {netrule.Udp, 22}, {netrule.Icmp, 0}, {"47", 0}, {"50", 0}, {"132", 0}} {
			if !q(c.proto, c.port) {
				t.Errorf("%s: %s/%d lost by carving tcp/22 out of all traffic", src, c.proto, c.port)
			}
		}
	}
}
