package jit

import (
	"reflect"
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

func TestMergePorts(t *testing.T) {
	const rg = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/"
	vm := func(name string) inventory.VM {
		return inventory.VM{ID: rg + name, Name: name, Location: "westeurope"}
	}
	port := func(n int, src string) PortPolicy {
		return PortPolicy{Number: n, Protocol: "TCP", AllowedSourceAddressPrefix: src, MaxRequestAccessDuration: "PT3H"}
	}
	defaultID := PolicyID("s1", "rg1", "westeurope", "default")
	otherID := PolicyID("s1", "rg1", "westeurope", "ops")
	existing := []Policy{
		// vm-a already has a policy guarding 22 from 198.18.0.0/15 for 1h.
		{ID: otherID, Name: "ops", Location: "westeurope", VirtualMachines: []VMPolicy{
			{ID: rg + "vm-a", Ports: []PortPolicy{{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "198.18.0.0/15", MaxRequestAccessDuration: "PT1H"}}},
		}},
		// "default" exists and guards vm-z, which must be kept.
		{ID: defaultID, Name: "default", Location: "westeurope", VirtualMachines: []VMPolicy{
			{ID: rg + "vm-z", Ports: []PortPolicy{port(3389, "*")}},
		}},
	}
	changes, err := MergePorts(existing, []VMPorts{
		{VM: vm("vm-a"), Ports: []PortPolicy{port(22, "*"), port(3389, "*")}},
		{VM: vm("vm-b"), Ports: []PortPolicy{port(22, "*")}},
		{VM: inventory.VM{ID: "/subscriptions/s1/resourceGroups/rg2/providers/Microsoft.Compute/virtualMachines/vm-c", Location: "northeurope"}, Ports: []PortPolicy{port(5985, "*")}},
	}, "default")
	if err != nil {
		t.Fatal(err)
	}
	want := []PolicyChange{
		{Policy: Policy{ID: defaultID, Name: "default", Location: "westeurope", VirtualMachines: []VMPolicy{
			{ID: rg + "vm-z", Ports: []PortPolicy{port(3389, "*")}},
			{ID: rg + "vm-b", Ports: []PortPolicy{port(22, "*")}},
		}}, VMs: []string{rg + "vm-b"}},
		{Policy: Policy{ID: otherID, Name: "ops", Location: "westeurope", VirtualMachines: []VMPolicy{
			{ID: rg + "vm-a", Ports: []PortPolicy{
				{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "198.18.0.0/15", MaxRequestAccessDuration: "PT1H"}, // kept as it was
				port(3389, "*"),
			}},
		}}, VMs: []string{rg + "vm-a"}},
		{Policy: Policy{ID: PolicyID("s1", "rg2", "northeurope", "default"), Name: "default", Location: "northeurope", Kind: "Basic", VirtualMachines: []VMPolicy{
			{ID: "/subscriptions/s1/resourceGroups/rg2/providers/Microsoft.Compute/virtualMachines/vm-c", Ports: []PortPolicy{port(5985, "*")}},
		}}, Created: true, VMs: []string{"/subscriptions/s1/resourceGroups/rg2/providers/Microsoft.Compute/virtualMachines/vm-c"}},
	}
	if !reflect.DeepEqual(changes, want) {
		t.Errorf("changes =\n%+v\nwant\n%+v", changes, want)
	}
	// The input policies are not modified.
	if len(existing[1].VirtualMachines) != 1 || len(existing[0].VirtualMachines[0].Ports) != 1 {
		t.Errorf("MergePorts changed its input: %+v", existing)
	}

	if _, err := MergePorts(nil, []VMPorts{{VM: inventory.VM{ID: rg + "vm-x"}, Ports: []PortPolicy{port(22, "*")}}}, "default"); err == nil {
		t.Error("a VM without a location should be refused")
	}
}

// A port the VM's policy has under another protocol is widened to "*"
// (one entry per port number), and a policy that already guards everything
// asked is reported unchanged: MergePorts used to compare numbers only and
// report a change that changed nothing.
func TestMergePortsProtocols(t *testing.T) {
	const vmID = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm-a"
	id := PolicyID("s1", "rg1", "westeurope", "default")
	with := func(proto string) []Policy {
		return []Policy{{ID: id, Name: "default", Location: "westeurope", VirtualMachines: []VMPolicy{
			{ID: vmID, Ports: []PortPolicy{{Number: 22, Protocol: netrule.Protocol(proto), AllowedSourceAddressPrefix: "10.0.0.0/8", MaxRequestAccessDuration: "PT1H"}}}}}}
	}
	add := []VMPorts{{VM: inventory.VM{ID: vmID, Location: "westeurope"}, Ports: []PortPolicy{{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}}}}
	for _, c := range []struct {
		have, want string
		widened    bool
	}{
		{"Udp", "*", true}, {"UDP", "*", true}, {"Tcp", "Tcp", false}, {"TCP", "TCP", false}, {"*", "*", false},
	} {
		existing := with(c.have)
		changes, err := MergePorts(existing, add, "default")
		if err != nil || len(changes) != 1 {
			t.Fatalf("%s: %v %+v", c.have, err, changes)
		}
		ch := changes[0]
		p := ch.Policy.VirtualMachines[0].Ports[0]
		if string(p.Protocol) != c.want || p.AllowedSourceAddressPrefix != "10.0.0.0/8" || p.MaxRequestAccessDuration != "PT1H" {
			t.Errorf("%s: port now %+v, want protocol %s and the other settings kept", c.have, p, c.want)
		}
		if (len(ch.Widened) == 1) != c.widened || ch.Unchanged == c.widened {
			t.Errorf("%s: widened %q unchanged %v", c.have, ch.Widened, ch.Unchanged)
		}
		if existing[0].VirtualMachines[0].Ports[0].Protocol != netrule.Protocol(c.have) {
			t.Errorf("%s: MergePorts changed its input", c.have)
		}
	}
}
