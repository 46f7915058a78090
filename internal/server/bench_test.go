package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net/netip"
	"syscall"

	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/netrule"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/server"
)

// startBenchServer starts a server on a fresh SQLite file with 64 generated
// Azure VMs, and returns it, the VMs' resource group, an administrator's
// client and the VMs' names.
func startBenchServer(b *testing.B) (*server.Server, string, *http.Client, []string) {
	cfg := server.Config{Listen: "127.0.0.1:0", DBPath: filepath.Join(b.TempDir(), "bench.db"), SampleInventory: true}
	srv, err := server.Start(context.Background(), server.WithSQLiteOptions(cfg, benchSQLiteOptions))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	base := "/subscriptions/" + inventory.SampleSubscription + "/resourceGroups/" + inventory.SampleResourceGroup
	client := &http.Client{Transport: authTransport{token: srv.AdminToken, next: &http.Transport{MaxIdleConnsPerHost: 64}}}
	return srv, base, client, benchInventory(b, srv, client, base, 64)
}

// benchInventory adds n Azure VMs, each with a NIC and an NSG exposing 22.
func benchInventory(b *testing.B, srv *server.Server, client *http.Client, base string, n int) []string {
	var inv inventory.Inventory
	var names []string
	for i := range n {
		name := fmt.Sprintf("bench-%03d", i)
		nic := base + "/providers/Microsoft.Network/networkInterfaces/" + name + "-nic"
		nsg := base + "/providers/Microsoft.Network/networkSecurityGroups/" + name + "-nsg"
		inv.VMs = append(inv.VMs, inventory.VM{ID: base + "/providers/Microsoft.Compute/virtualMachines/" + name, Name: name,
			Cloud: inventory.Azure, Provider: inventory.ProviderSim, Location: "westeurope", NICs: []string{nic}})
		inv.NICs = append(inv.NICs, inventory.NIC{ID: nic, NSG: nsg, PrivateIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 9, byte(i / 250), byte(i%250 + 1)})}})
		inv.NSGs = append(inv.NSGs, netrule.NSG{ID: nsg, Name: name + "-nsg", Location: "westeurope", SecurityRules: []netrule.SecurityRule{
			{Name: "ssh", Priority: 300, Direction: netrule.Inbound, Access: netrule.Allow, Protocol: netrule.Tcp,
				SourceAddressPrefix: "Internet", SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "22"}}})
		names = append(names, name)
	}
	body, _ := json.Marshal(inv)
	resp, err := client.Post(srv.URL+"/drawbridge/v1/inventory", "application/json", bytes.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		msg, _ := io.ReadAll(resp.Body)
		b.Fatalf("inventory: %v %s", err, msg)
	}
	resp.Body.Close()
	return names
}

// benchParallelism is how many client goroutines per CPU the request
// benchmark runs (go test's -cpu times this); 8 on 2 CPUs is 16 clients.
var benchParallelism = flag.Int("parallelism", 8, "client goroutines per CPU in BenchmarkRequestThroughAPI")

// BenchmarkRequestThroughAPI measures whole requests through the HTTP API on
// SQLite: decode, validate against the policy, commit the request and its
// grant (ending the previous grant on that VM and port), and update the
// simulated NSG. Clients spread over 64 generated Azure VMs.
//
//	go test -run '^$' -bench RequestThroughAPI -benchtime 5000x ./internal/server/
func BenchmarkRequestThroughAPI(b *testing.B) {
	srv, base, client, vms := startBenchServer(b)
	for _, name := range vms {
		vm := base + "/providers/Microsoft.Compute/virtualMachines/" + name
		body := fmt.Sprintf(`{"properties":{"virtualMachines":[{"id":%q,"ports":[{"number":22,"protocol":"TCP","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]}]}}`, vm)
		req, _ := http.NewRequest("PUT", srv.URL+base+"/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/"+name, strings.NewReader(body))
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("policy for %s: %v %v", name, err, resp)
		}
		resp.Body.Close()
	}
	var n atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	busy0, jobs0, _ := srv.WriterBusy()
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU(b)
	b.SetParallelism(*benchParallelism)
	b.RunParallel(func(pb *testing.PB) {
		var local []time.Duration
		for pb.Next() {
			i := n.Add(1)
			vm := base + "/providers/Microsoft.Compute/virtualMachines/" + vms[i%int64(len(vms))]
			body := fmt.Sprintf(`{"vm":%q,"ports":[22],"duration":"1h","source":"198.18.%d.%d"}`, vm, (i/250)%250, i%250+1)
			t := time.Now()
			resp, err := client.Post(srv.URL+"/drawbridge/v1/requests", "application/json", strings.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 202 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
			local = append(local, time.Since(t))
		}
		mu.Lock()
		lat = append(lat, local...)
		mu.Unlock()
	})
	elapsed, cpu := time.Since(start), processCPU(b)-cpu0
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "requests/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		// The process's CPU time (server and clients) per request: unlike
		// requests/s it hardly moves when other processes load the machine.
		b.ReportMetric(float64(cpu.Microseconds())/float64(len(lat)), "cpu-µs/req")
	}
	// The writer's time per transaction (requests and anything else it
	// ran meanwhile): the serial part, which bounds requests/s.
	if busy, jobs, ok := srv.WriterBusy(); ok && jobs > jobs0 {
		b.ReportMetric(float64((busy-busy0).Microseconds())/float64(jobs-jobs0), "writer-µs/tx")
	}
}

// authTransport sends the bootstrap administrator token with every request:
// the benchmark measures the authenticated, authorized, audited path.
type authTransport struct {
	token string
	next  http.RoundTripper
}

func (a authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+a.token)
	return a.next.RoundTrip(r)
}

// BenchmarkInitiateSerial is one request after another straight into the
// JIT service (no HTTP, no concurrency, no group commit to share): the cost
// of one request's transaction on SQLite, what bounds the API's rate.
//
//	go test -run '^$' -bench InitiateSerial -benchtime 3000x ./internal/server/
func BenchmarkInitiateSerial(b *testing.B) {
	ctx := context.Background()
	srv, base, _, vms := startBenchServer(b)
	var policies []string
	for _, name := range vms {
		vm := base + "/providers/Microsoft.Compute/virtualMachines/" + name
		p, err := srv.Service.PutPolicy(ctx, jit.Policy{ID: jit.PolicyID(inventory.SampleSubscription, inventory.SampleResourceGroup, "westeurope", name), Name: name, Location: "westeurope",
			VirtualMachines: []jit.VMPolicy{{ID: vm, Ports: []jit.PortPolicy{{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}}}}})
		if err != nil {
			b.Fatal(err)
		}
		policies = append(policies, p.ID)
	}
	actor := jit.Actor{Principal: "bench", Address: "127.0.0.1"}
	i := 0
	for b.Loop() {
		i++
		vm := base + "/providers/Microsoft.Compute/virtualMachines/" + vms[i%len(vms)]
		_, err := srv.Service.Initiate(ctx, actor, policies[i%len(vms)], jit.InitiateInput{VirtualMachines: []jit.InitiateVM{{ID: vm,
			Ports: []jit.InitiatePort{{Number: 22, Duration: "1h", AllowedSourceAddressPrefix: fmt.Sprintf("198.18.%d.%d", (i/250)%250, i%250+1)}}}}})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// processCPU returns the CPU time (user+system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
