package jit

import (
	"reflect"
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
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
