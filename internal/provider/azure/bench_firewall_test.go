package azure_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/cloudsim/armsim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/provider/azure"
	"github.com/drawbridge/drawbridge/internal/provider/providertest"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/server"
)

// hasDNAT reports whether the simulator's firewall holds the JIT DNAT rule
// named name.
func hasDNAT(s *armsim.Server, fwID, name string) bool {
	d, ok := s.Doc(fwID)
	if !ok {
		return false
	}
	cs, _ := d["properties"].(map[string]any)["natRuleCollections"].([]any)
	for _, c := range cs {
		cd := c.(map[string]any)
		if cd["name"] != sim.FirewallCollection {
			continue
		}
		rules, _ := cd["properties"].(map[string]any)["rules"].([]any)
		for _, r := range rules {
			if strings.EqualFold(r.(map[string]any)["name"].(string), name) {
				return true
			}
		}
	}
	return false
}

// BenchmarkInitiateToDNATRule: POST /drawbridge/v1/requests to a server
// whose VM sits behind a classic Azure Firewall (provider azure, wire
// simulator), until the grant's DNAT rule is in the simulated firewall
// (p50/p99 "dnat") and until its NSG allow rule is there too, the path
// open ("open"); requests without faults and with 20% of all ARM calls
// answered 429 (retry-after 100 ms) alternate one by one; each grant is
// revoked (and its DNAT rule gone) before the next.
//
//	go test -run '^$' -bench InitiateToDNATRule -benchtime 1x ./internal/provider/azure/
func BenchmarkInitiateToDNATRule(b *testing.B) {
	ctx := context.Background()
	s := startSim(b, armsim.Options{})
	inv := providertest.Inventory()
	for i := range inv.VMs {
		inv.VMs[i].Provider = inventory.ProviderAzure
	}
	s.Load(inv)
	opts := s.ClientOptions()
	opts.Retry = policy.RetryOptions{MaxRetries: 8, RetryDelay: 100 * time.Millisecond, MaxRetryDelay: time.Minute}
	p, err := azure.New(azure.Config{Credential: armsim.StaticToken("t"), ClientOptions: opts, PollFrequency: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.Start(ctx, server.Config{Listen: "127.0.0.1:0", DBPath: filepath.Join(b.TempDir(), "db"), Insecure: true,
		ExtraProviders: jit.ProviderMap{inventory.ProviderAzure: p}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	c, _ := client.New(srv.URL, "")
	doc, _ := json.Marshal(inv)
	if _, err := c.ApplyInventory(ctx, doc); err != nil {
		b.Fatal(err)
	}
	var vm inventory.VM
	for _, v := range inv.VMs {
		if v.Firewall != "" {
			vm = v
		}
	}
	pol := "/subscriptions/00000000-0000-0000-0000-00000000c0f0/resourceGroups/conf-rg/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"
	pb, _ := json.Marshal(map[string]any{"properties": map[string]any{"virtualMachines": []any{map[string]any{"id": vm.ID,
		"ports": []any{map[string]any{"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}}}}}})
	if _, err := c.PutPolicyRaw(ctx, pol, pb); err != nil {
		b.Fatal(err)
	}
	nsg := inv.NICs[len(inv.NICs)-1].NSG // f-nic's
	const samples = 100
	var dnat, dnat429, open, open429 []time.Duration
	for i := range 2 * samples {
		faulty := i%2 == 1
		if faulty {
			s.SetFaults(armsim.Faults{ThrottleRate: 0.2, RetryAfter: 100 * time.Millisecond, Seed: uint64(i)})
		}
		start := time.Now()
		if _, err := c.Request(ctx, api.SimpleRequest{VM: vm.ID, Ports: []int{22}, Duration: "PT1H", Source: fmt.Sprintf("198.18.%d.%d", i/250, 1+i%250)}); err != nil {
			b.Fatal(err)
		}
		var grant string
		var atDNAT time.Duration
		deadline := time.Now().Add(time.Minute)
		for {
			gs, err := c.Grants(ctx, vm.ID, true)
			if err != nil {
				b.Fatal(err)
			}
			if len(gs) == 1 {
				grant = gs[0].ID
				if atDNAT == 0 && hasDNAT(s, providertest.FirewallID, sim.DNATRuleName(vm.ID, grant)) {
					atDNAT = time.Since(start)
				}
				if atDNAT > 0 && hasRule(s, nsg, sim.AllowRuleName(vm.ID, grant)) {
					break
				}
			}
			if time.Now().After(deadline) {
				b.Fatalf("request %d: the path did not open in a minute", i)
			}
			time.Sleep(time.Millisecond)
		}
		all := time.Since(start)
		s.SetFaults(armsim.Faults{})
		if faulty {
			dnat429, open429 = append(dnat429, atDNAT), append(open429, all)
		} else {
			dnat, open = append(dnat, atDNAT), append(open, all)
		}
		if _, err := c.Revoke(ctx, grant); err != nil {
			b.Fatal(err)
		}
		for hasDNAT(s, providertest.FirewallID, sim.DNATRuleName(vm.ID, grant)) {
			time.Sleep(time.Millisecond)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(dnat, 0.5)), "p50-dnat-ms")
	b.ReportMetric(ms(percentile(dnat, 0.99)), "p99-dnat-ms")
	b.ReportMetric(ms(percentile(dnat429, 0.5)), "p50-dnat-429-ms")
	b.ReportMetric(ms(percentile(dnat429, 0.99)), "p99-dnat-429-ms")
	b.Logf("path open (DNAT + NSG allow): p50 %v p99 %v; with 429s p50 %v p99 %v; %d samples each; throttled runs: %+v",
		percentile(open, 0.5), percentile(open, 0.99), percentile(open429, 0.5), percentile(open429, 0.99), samples, s.FaultCounts())
}
