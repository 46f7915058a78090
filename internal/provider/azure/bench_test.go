package azure_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/cloudsim/armsim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/azure"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/server"
)

const benchSub = "00000000-0000-0000-0000-0000000000b0"

// bigInventory is n Azure VMs, perSubnet to a subnet; every subnet and every
// NIC has its own NSG with one user rule.
func bigInventory(n, perSubnet int) inventory.Inventory {
	rg := "/subscriptions/" + benchSub + "/resourceGroups/bench/providers/Microsoft.Network/"
	var inv inventory.Inventory
	vnet := rg + "virtualNetworks/bench-vnet"
	inv.VirtualNetworks = []inventory.VirtualNetwork{{ID: vnet, AddressSpace: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	user := func(name string) []netrule.SecurityRule {
		return []netrule.SecurityRule{{Name: name, Priority: 500, Direction: netrule.Inbound, Access: netrule.Allow, Protocol: netrule.Tcp,
			SourceAddressPrefix: "Internet", SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "443"}}
	}
	for i := range n {
		s := i / perSubnet
		subnet := fmt.Sprintf("%ssubnets/s%d", vnet+"/", s)
		if i%perSubnet == 0 {
			snsg := fmt.Sprintf("%snetworkSecurityGroups/s%d-nsg", rg, s)
			inv.Subnets = append(inv.Subnets, inventory.Subnet{ID: subnet, AddressPrefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(s >> 8), byte(s), 0}), 24), NSG: snsg})
			inv.NSGs = append(inv.NSGs, netrule.NSG{ID: snsg, Name: fmt.Sprintf("s%d-nsg", s), Location: "westeurope", SecurityRules: user("AllowHTTPS")})
		}
		nic := fmt.Sprintf("%snetworkInterfaces/vm%d-nic", rg, i)
		nnsg := fmt.Sprintf("%snetworkSecurityGroups/vm%d-nsg", rg, i)
		inv.NSGs = append(inv.NSGs, netrule.NSG{ID: nnsg, Name: fmt.Sprintf("vm%d-nsg", i), Location: "westeurope", SecurityRules: user("AllowHTTPS")})
		inv.NICs = append(inv.NICs, inventory.NIC{ID: nic, Subnet: subnet, NSG: nnsg,
			PrivateIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, byte(s >> 8), byte(s), byte(4 + i%perSubnet)})}})
		inv.VMs = append(inv.VMs, inventory.VM{ID: fmt.Sprintf("/subscriptions/%s/resourceGroups/bench/providers/Microsoft.Compute/virtualMachines/vm%d", benchSub, i),
			Name: fmt.Sprintf("vm%d", i), Cloud: inventory.Azure, Provider: inventory.ProviderAzure, Location: "westeurope", NICs: []string{nic}})
	}
	return inv
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// BenchmarkInitiateToAllowRule: POST /drawbridge/v1/requests to a server
// whose VM uses provider azure, against the wire simulator, until the allow
// rule is in the simulated NSG; alternating requests without and with 20%
// of ARM calls answered 429 (retry-after 100 ms).
//
//	go test -run '^$' -bench InitiateToAllowRule -benchtime 1x ./internal/provider/azure/
func BenchmarkInitiateToAllowRule(b *testing.B) {
	ctx := context.Background()
	s := startSim(b, armsim.Options{})
	inv := bigInventory(1, 1)
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
	vm := inv.VMs[0]
	pol := "/subscriptions/" + benchSub + "/resourceGroups/bench/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"
	pb, _ := json.Marshal(map[string]any{"properties": map[string]any{"virtualMachines": []any{map[string]any{"id": vm.ID,
		"ports": []any{map[string]any{"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"}}}}}})
	if _, err := c.PutPolicyRaw(ctx, pol, pb); err != nil {
		b.Fatal(err)
	}
	nsg := inv.NICs[0].NSG
	samples := 100
	var clean, throttled []time.Duration
	for i := range 2 * samples {
		faulty := i%2 == 1
		if faulty {
			s.SetFaults(armsim.Faults{ThrottleRate: 0.2, RetryAfter: 100 * time.Millisecond, Seed: uint64(i)})
		}
		start := time.Now()
		req, err := c.Request(ctx, api.SimpleRequest{VM: vm.ID, Ports: []int{22}, Duration: "PT1H", Source: fmt.Sprintf("198.18.%d.%d", i/250, 1+i%250)})
		if err != nil {
			b.Fatal(err)
		}
		var grant string
		for {
			gs, err := c.Grants(ctx, vm.ID, true)
			if err != nil {
				b.Fatal(err)
			}
			if len(gs) == 1 && hasRule(s, nsg, sim.AllowRuleName(vm.ID, gs[0].ID)) {
				grant = gs[0].ID
				break
			}
			time.Sleep(time.Millisecond)
		}
		d := time.Since(start)
		_ = req
		s.SetFaults(armsim.Faults{})
		if faulty {
			throttled = append(throttled, d)
		} else {
			clean = append(clean, d)
		}
		if _, err := c.Revoke(ctx, grant); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(percentile(clean, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(clean, 0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(percentile(throttled, 0.5).Microseconds())/1000, "p50-429-ms")
	b.ReportMetric(float64(percentile(throttled, 0.99).Microseconds())/1000, "p99-429-ms")
	b.Logf("%d samples each; throttled run: %+v", samples, s.FaultCounts())
}

// BenchmarkEnableUnderWriteThrottle enables JIT (4 ports) on -vms VMs, 10
// to a subnet, each behind its subnet's NSG and its own NIC NSG, with
// the simulator throttling writes to 10 per second (burst 100, 429 beyond
// it with the time to the next free slot), 8 VMs at a time.
//
//	go test -run '^$' -bench EnableUnderWriteThrottle -benchtime 1x ./internal/provider/azure/ -args -vms 1000
func BenchmarkEnableUnderWriteThrottle(b *testing.B) {
	n := *benchVMs
	s := startSim(b, armsim.Options{})
	inv := bigInventory(n, 10)
	s.Load(inv)
	const rate, burst = 10.0, 100
	s.SetFaults(armsim.Faults{WritesPerSecond: rate, WriteBurst: burst})
	opts := s.ClientOptions()
	opts.Retry = policy.RetryOptions{MaxRetries: 8, RetryDelay: time.Second, MaxRetryDelay: time.Minute}
	p, err := azure.New(azure.Config{Credential: armsim.StaticToken("t"), ClientOptions: opts, PollFrequency: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ports := []jit.GuardedPort{{Port: 22, Protocol: netrule.Tcp}, {Port: 3389, Protocol: netrule.Tcp}, {Port: 5985, Protocol: netrule.Tcp}, {Port: 5986, Protocol: netrule.Tcp}}
	writes := n * len(ports) * 2
	start := time.Now()
	var failedFirst atomic.Int64
	todo := inv.VMs
	for round := 0; len(todo) > 0 && round < 5; round++ {
		var mu sync.Mutex
		var again []inventory.VM
		work := make(chan inventory.VM)
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for vm := range work {
					if _, err := p.Apply(context.Background(), vm, jit.Desired{VMID: vm.ID, Guarded: ports}); err != nil {
						b.Log(err)
						if round == 0 {
							failedFirst.Add(1)
						}
						mu.Lock()
						again = append(again, vm)
						mu.Unlock()
					}
				}
			}()
		}
		for _, vm := range todo {
			work <- vm
		}
		close(work)
		wg.Wait()
		todo = again
	}
	took := time.Since(start)
	if len(todo) > 0 {
		b.Fatalf("%d VMs still not enabled after 5 rounds", len(todo))
	}
	lower := time.Duration(float64(writes-burst) / rate * float64(time.Second))
	b.ReportMetric(took.Seconds(), "s-total")
	b.ReportMetric(lower.Seconds(), "s-lower-bound")
	b.ReportMetric(float64(failedFirst.Load()), "vms-failed-first-try")
	b.Logf("%d VMs, %d rule writes, took %s, throttle lower bound %s (%.2fx), 429s: %d", n, writes, took.Round(time.Millisecond), lower, took.Seconds()/lower.Seconds(), s.FaultCounts().Throttled)
}

// BenchmarkDiscover lists a -vms VM subscription (NIC, NIC NSG, one subnet
// and subnet NSG per 10 VMs) through the SDK's pagers, 100 items a page.
//
//	go test -run '^$' -bench Discover -benchtime 1x ./internal/provider/azure/ -args -vms 10000
func BenchmarkDiscover(b *testing.B) {
	s := startSim(b, armsim.Options{PageSize: 100})
	s.Load(bigInventory(*benchVMs, 10))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	b.ResetTimer()
	var inv inventory.Inventory
	for range b.N {
		var err error
		inv, err = azure.Discover(context.Background(), armsim.StaticToken("t"), s.ClientOptions(), azure.Scope{Subscription: benchSub})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	runtime.ReadMemStats(&after)
	if len(inv.VMs) != *benchVMs {
		b.Fatalf("discovered %d VMs, want %d", len(inv.VMs), *benchVMs)
	}
	runtime.GC()
	var held runtime.MemStats
	runtime.ReadMemStats(&held)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "MiB-alloc/op")
	b.ReportMetric(float64(held.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-result")
	cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()+ru1.Stime.Nano()-ru0.Stime.Nano()) / time.Duration(b.N)
	b.ReportMetric(cpu.Seconds(), "cpu-s/op") // client and simulator together: the machine is shared
	runtime.KeepAlive(inv)
}
