package azure_test

import (
	"context"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/cloudsim/armsim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/provider/azure"
)

// azureOnly is the Azure half of an inventory, keyed for comparison.
func azureOnly(inv inventory.Inventory) inventory.Inventory {
	var out inventory.Inventory
	for _, vm := range inv.VMs {
		if vm.Cloud == inventory.Azure {
			vm.Provider, vm.Firewall = inventory.ProviderAzure, "" // discovery's provider; firewalls are not linked to VMs
			out.VMs = append(out.VMs, vm)
		}
	}
	out.NICs, out.Subnets, out.NSGs, out.Firewalls, out.VirtualNetworks = inv.NICs, inv.Subnets, inv.NSGs, inv.Firewalls, inv.VirtualNetworks
	sort.Slice(out.VMs, func(i, j int) bool { return strings.ToLower(out.VMs[i].ID) < strings.ToLower(out.VMs[j].ID) })
	sort.Slice(out.NICs, func(i, j int) bool { return strings.ToLower(out.NICs[i].ID) < strings.ToLower(out.NICs[j].ID) })
	sort.Slice(out.Subnets, func(i, j int) bool { return strings.ToLower(out.Subnets[i].ID) < strings.ToLower(out.Subnets[j].ID) })
	sort.Slice(out.NSGs, func(i, j int) bool { return strings.ToLower(out.NSGs[i].ID) < strings.ToLower(out.NSGs[j].ID) })
	return out
}

// TestDiscoverSampleThroughPagers: the sample's Azure network, served by the
// wire simulator two items per page, comes back through the SDK's pagers
// as the same inventory, valid for inventory apply.
func TestDiscoverSampleThroughPagers(t *testing.T) {
	s := startSim(t, armsim.Options{PageSize: 2})
	want := azureOnly(inventory.Sample())
	s.Load(inventory.Sample())
	for _, rg := range []string{"", inventory.SampleResourceGroup} {
		got, err := azure.Discover(context.Background(), armsim.StaticToken("t"), s.ClientOptions(),
			azure.Scope{Subscription: inventory.SampleSubscription, ResourceGroup: rg})
		if err != nil {
			t.Fatal(err)
		}
		if err := inventory.Validate(got); err != nil {
			t.Fatalf("discovered inventory is invalid: %v", err)
		}
		got = azureOnly(got)
		for _, c := range []struct {
			name      string
			got, want any
		}{
			{"vms", got.VMs, want.VMs}, {"nics", got.NICs, want.NICs}, {"subnets", got.Subnets, want.Subnets},
			{"nsgs", got.NSGs, want.NSGs}, {"firewalls", got.Firewalls, want.Firewalls}, {"virtualNetworks", got.VirtualNetworks, want.VirtualNetworks},
		} {
			if !reflect.DeepEqual(c.got, c.want) {
				t.Errorf("rg %q: %s\n got %+v\nwant %+v", rg, c.name, c.got, c.want)
			}
		}
	}
	pages := 0
	for _, c := range s.Calls() {
		if strings.HasSuffix(c.Path, "/networkInterfaces") {
			pages++
		}
	}
	if pages < 6 { // 5 NICs at 2 a page, listed twice
		t.Errorf("network interfaces listed in %d pages, want nextLink paging", pages)
	}
}
