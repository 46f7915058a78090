package netrule

import (
	"net/netip"
	"testing"
)

func TestServiceTagsParse(t *testing.T) {
	for _, tc := range []struct {
		s  string
		ok bool
	}{
		{"GatewayManager", true}, {"gatewaymanager", true}, {"AzureCloud", true}, {"AzureCloud.westeurope", true},
		{"Storage.WestEurope", true}, {"Sql.EastUS2", true}, {"AzureFrontDoor.Backend", true},
		{"INTERNET", true}, {"VIRTUAL_NETWORK", true}, {"AZURE_LOADBALANCER", true},
		{"GatewayManager.WestEurope", false}, // not a regional tag
		{"Storage.", false}, {"Storag", false}, {"AzureCloudX", false},
	} {
		if err := ParseAddressPrefix(tc.s); (err == nil) != tc.ok {
			t.Errorf("ParseAddressPrefix(%q) = %v, want ok=%v", tc.s, err, tc.ok)
		}
	}
}

// TestServiceTagExposure: a rule allowing AzureCloud exposes the port to
// the internet (any Azure customer can send from it); one allowing a
// Microsoft-operated service's tag does not.
func TestServiceTagExposure(t *testing.T) {
	env := NewEnv(netip.MustParsePrefix("10.0.0.0/16"))
	for _, tc := range []struct {
		tag     string
		exposed bool
	}{
		{"AzureCloud", true}, {"AzureCloud.westeurope", true}, {"Internet", true},
		{"GatewayManager", false}, {"Storage", false}, {"AzureMonitor", false}, {"ApiManagement.WestEurope", false},
	} {
		n := NSG{ID: "n", Name: "n", SecurityRules: []SecurityRule{{Name: "r", Priority: 100, Direction: Inbound, Access: Allow, Protocol: Tcp,
			SourceAddressPrefix: tc.tag, SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "22"}}}
		c, err := CompileNSG(n)
		if err != nil {
			t.Fatalf("%s: %v", tc.tag, err)
		}
		v := EvaluateAzure([]*CompiledNSG{c}, env, Query{Destination: netip.MustParseAddr("10.0.0.4"), Port: 22, Protocol: Tcp, Source: env.InternetSource()})
		if v.Allowed != tc.exposed {
			t.Errorf("%s: internet allowed = %v, want %v", tc.tag, v.Allowed, tc.exposed)
		}
		// A service tag never stands for the virtual network either.
		vnet := EvaluateAzure([]*CompiledNSG{c}, env, Query{Destination: netip.MustParseAddr("10.0.0.4"), Port: 22, Protocol: Tcp,
			Source: AddressSource(netip.MustParseAddr("10.0.1.9"))})
		if !vnet.Allowed || vnet.Deciding().Rule != "AllowVnetInBound" {
			t.Errorf("%s: a VNet source should be decided by AllowVnetInBound, got %+v", tc.tag, vnet.Deciding())
		}
	}
}
