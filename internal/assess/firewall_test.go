package assess

import (
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// TestClassicFirewallDNATExposes: a VM with no public IP behind a classic
// Azure Firewall is exposed by a DNAT rule from the internet that reaches
// it (the NSG lets the firewall's subnet in), healthy once JIT guards the
// port, and only a rule from the internet counts; behind a Firewall
// Manager firewall the same VM is not applicable.
func TestClassicFirewallDNATExposes(t *testing.T) {
	inv := inventory.SampleClassicFirewall()
	vm := inv.VMs[0].ID
	one := func(in Input) string {
		t.Helper()
		for _, r := range assessOrFail(t, in).Results {
			if r.ID == vm {
				return summary(r)
			}
		}
		t.Fatal("no result for jump-01")
		return ""
	}
	if got, want := one(Input{Inventory: inv}), "Unhealthy 3389:edge-fw/inbound/rdp-jump/*"; got != want {
		t.Errorf("before JIT: %s, want %s", got, want)
	}
	in := Input{Inventory: inv, Policies: map[string][]PolicyPort{inventory.Key(vm): {{Number: 22}, {Number: 3389}}}}
	if got := one(in); got != "Healthy still:3389" {
		// The rule stays in force until JIT's deny rule is on the NSG; the
		// assessment evaluates the inventory as it is.
		t.Errorf("with a policy (before the deny rule lands): %s", got)
	}
	// The NSG stops the firewall's subnet: not exposed.
	inv.NSGs[0].SecurityRules = append(inv.NSGs[0].SecurityRules, netrule.SecurityRule{Name: "DenyFirewall", Priority: 100, Direction: netrule.Inbound,
		Access: netrule.Deny, Protocol: netrule.Any, SourceAddressPrefix: "10.0.250.0/26", SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "*"})
	if got := one(Input{Inventory: inv}); got != "Healthy" {
		t.Errorf("NSG denies the firewall subnet: %s, want Healthy", got)
	}
	inv = inventory.SampleClassicFirewall()
	inv.Firewalls[0].NatRuleCollections[0].Rules[0].SourceAddresses = nil
	inv.Firewalls[0].NatRuleCollections[0].Rules[0].SourceIPGroups = []string{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/ipGroups/ops"}
	if got := one(Input{Inventory: inv}); got != "Unhealthy 3389:edge-fw/inbound/rdp-jump//subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/ipGroups/ops" {
		t.Errorf("DNAT rule from an IP group (counted as the internet): %s", got)
	}
	inv = inventory.SampleClassicFirewall()
	inv.Firewalls[0].ManagedByFirewallManager = true
	if got := one(Input{Inventory: inv}); got != "NotApplicable "+string(ReasonFirewallManager) {
		t.Errorf("behind Firewall Manager: %s", got)
	}
}
