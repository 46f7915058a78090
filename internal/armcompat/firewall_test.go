package armcompat

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// fwVM is a VM reached only through a classic Azure Firewall, in a
// resource group of its own so that the other subtests' lists keep their
// counts.
var fwVM = vmSpec{"rg-fw", "westeurope", "fw-vm"}

// firewallInventory puts fwVM behind firewall edge-fw (public IP
// 198.18.0.30), whose port 22 a user's DNAT rule already takes.
func firewallInventory() inventory.Inventory {
	base := "/subscriptions/" + sub + "/resourceGroups/" + fwVM.rg + "/providers/Microsoft.Network/"
	nic, nsg, fw := base+"networkInterfaces/fw-vm-nic", base+"networkSecurityGroups/fw-vm-nsg", base+"azureFirewalls/edge-fw"
	public := netip.MustParseAddr("198.18.0.30")
	return inventory.Inventory{
		VMs:  []inventory.VM{{ID: vmID(fwVM), Name: fwVM.name, Cloud: inventory.Azure, Provider: inventory.ProviderSim, Location: fwVM.loc, NICs: []string{nic}, Firewall: fw}},
		NICs: []inventory.NIC{{ID: nic, NSG: nsg, PrivateIPs: []netip.Addr{netip.MustParseAddr("10.6.0.4")}}},
		NSGs: []netrule.NSG{{ID: nsg, Name: "fw-vm-nsg", Location: fwVM.loc, SecurityRules: []netrule.SecurityRule{}}},
		Firewalls: []inventory.Firewall{{ID: fw, PublicIPs: []netip.Addr{public}, SubnetPrefix: netip.MustParsePrefix("10.6.250.0/26"),
			NatRuleCollections: []inventory.NatRuleCollection{{Name: "inbound", Priority: 100, Action: "Dnat", Rules: []inventory.NatRule{{
				Name: "ssh-appliance", SourceAddresses: []string{"203.0.113.0/24"}, DestinationAddresses: []string{public.String()},
				DestinationPorts: []string{"22"}, Protocols: []string{"TCP"}, TranslatedAddress: "10.6.0.9", TranslatedPort: "22"}}}}}},
	}
}

// testFirewallMappedPort: through the SDK, a request on a VM behind a
// classic Azure Firewall answers the specification's mappedPort (the
// firewall port its DNAT rule listens on, 50000 since 22 is taken) and
// drawbridge's connectTo, in Initiate's answer and in the policy's
// requests.
func testFirewallMappedPort(t *testing.T, e *env) {
	if err := e.srv.Service.ApplyInventory(context.Background(), firewallInventory()); err != nil {
		t.Fatal(err)
	}
	c := e.admin
	if _, err := c.CreateOrUpdate(e.ctx, fwVM.rg, fwVM.loc, policyName(fwVM), policyBody(fwVM, portRule(22, "TCP")), nil); err != nil {
		t.Fatal(err)
	}
	r, err := c.Initiate(e.ctx, fwVM.rg, fwVM.loc, policyName(fwVM), initiateBody(fwVM, 22, time.Now().Add(time.Hour)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := r.VirtualMachines[0].Ports[0]; p.MappedPort == nil || *p.MappedPort != 50000 {
		t.Errorf("Initiate through the firewall: mappedPort %v, want 50000", p.MappedPort)
	}
	got, err := c.Get(e.ctx, fwVM.rg, fwVM.loc, policyName(fwVM), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := findPort(t, got.JitNetworkAccessPolicy, *r.StartTimeUTC, 22); p.MappedPort == nil || *p.MappedPort != 50000 {
		t.Errorf("the policy's request: mappedPort %v, want 50000", p.MappedPort)
	}
	// connectTo is an extension: the raw answer carries it (and
	// ModelsKeepFields checks it is recorded as one).
	_, raw := e.raw("GET", policyID(fwVM)+"?api-version=2020-01-01", "")
	reqs, _ := raw["properties"].(map[string]any)["requests"].([]any)
	if len(reqs) != 1 {
		t.Fatalf("requests %v", reqs)
	}
	port := reqs[0].(map[string]any)["virtualMachines"].([]any)[0].(map[string]any)["ports"].([]any)[0].(map[string]any)
	if port["connectTo"] != "198.18.0.30:50000" {
		t.Errorf("connectTo %v, want 198.18.0.30:50000", port["connectTo"])
	}
}
