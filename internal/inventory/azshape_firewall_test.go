package inventory

import (
	"net/netip"
	"reflect"
	"testing"
)

// TestAzFirewallShow: a classic firewall as `az network firewall show`
// prints it, beside `az network vnet show` (its AzureFirewallSubnet) and `az
// network public-ip list`, becomes the firewall the DNAT path needs; one
// with a firewallPolicy is marked as managed by Firewall Manager.
func TestAzFirewallShow(t *testing.T) {
	const doc = `{
  "virtualNetworks": [{"id": "` + azSub + `Microsoft.Network/virtualNetworks/hub", "etag": "W/\"1\"", "type": "Microsoft.Network/virtualNetworks",
    "addressSpace": {"addressPrefixes": ["10.8.0.0/16"]},
    "subnets": [{"id": "` + azSub + `Microsoft.Network/virtualNetworks/hub/subnets/AzureFirewallSubnet", "addressPrefix": "10.8.0.0/26", "provisioningState": "Succeeded"}]}],
  "publicIPAddresses": [{"id": "` + azSub + `Microsoft.Network/publicIPAddresses/fw-pip", "ipAddress": "198.18.7.1", "type": "Microsoft.Network/publicIPAddresses"}],
  "firewalls": [
    {"id": "` + azSub + `Microsoft.Network/azureFirewalls/edge", "name": "edge", "etag": "W/\"9\"", "type": "Microsoft.Network/azureFirewalls",
     "location": "westeurope", "provisioningState": "Succeeded", "resourceGroup": "prod-rg", "threatIntelMode": "Alert",
     "sku": {"name": "AZFW_VNet", "tier": "Standard"}, "applicationRuleCollections": [], "networkRuleCollections": [],
     "ipConfigurations": [{"id": "x", "name": "ipconfig1", "privateIPAddress": "10.8.0.4", "provisioningState": "Succeeded",
        "publicIPAddress": {"id": "` + azSub + `Microsoft.Network/publicIPAddresses/fw-pip", "resourceGroup": "prod-rg"},
        "subnet": {"id": "` + azSub + `Microsoft.Network/virtualNetworks/hub/subnets/AzureFirewallSubnet", "resourceGroup": "prod-rg"}}],
     "natRuleCollections": [{"action": {"type": "Dnat"}, "etag": "W/\"9\"", "id": "y", "name": "inbound", "priority": 200, "provisioningState": "Succeeded",
        "resourceGroup": "prod-rg",
        "rules": [{"name": "rdp", "description": null, "sourceAddresses": ["*"], "sourceIpGroups": [], "destinationAddresses": ["198.18.7.1"],
          "destinationPorts": ["3389"], "protocols": ["TCP"], "translatedAddress": "10.7.3.4", "translatedPort": "3389", "translatedFqdn": null}]}]},
    {"id": "` + azSub + `Microsoft.Network/azureFirewalls/managed", "etag": "W/\"2\"", "type": "Microsoft.Network/azureFirewalls",
     "firewallPolicy": {"id": "` + azSub + `Microsoft.Network/firewallPolicies/p", "resourceGroup": "prod-rg"}, "ipConfigurations": [], "natRuleCollections": []}
  ]}`
	inv, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []Firewall{
		{ID: azSub + "Microsoft.Network/azureFirewalls/edge", PublicIPs: []netip.Addr{netip.MustParseAddr("198.18.7.1")},
			SubnetPrefix: netip.MustParsePrefix("10.8.0.0/26"), Subnet: azSub + "Microsoft.Network/virtualNetworks/hub/subnets/AzureFirewallSubnet",
			NatRuleCollections: []NatRuleCollection{{Name: "inbound", Priority: 200, Action: "Dnat", Rules: []NatRule{{Name: "rdp",
				SourceAddresses: []string{"*"}, DestinationAddresses: []string{"198.18.7.1"}, DestinationPorts: []string{"3389"},
				Protocols: []string{"TCP"}, TranslatedAddress: "10.7.3.4", TranslatedPort: "3389"}}}}},
		{ID: azSub + "Microsoft.Network/azureFirewalls/managed", ManagedByFirewallManager: true},
	}
	if !reflect.DeepEqual(inv.Firewalls, want) {
		t.Errorf("firewalls\n got %+v\nwant %+v", inv.Firewalls, want)
	}
}
