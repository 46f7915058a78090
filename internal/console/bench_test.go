package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/server"
)

// benchEstate is n Azure VMs in 20 resource groups, each with a NIC and its
// own NSG of 4 rules (1 VM in 3 exposes SSH to the internet); every 100th
// VM is guarded by a JIT policy of its resource group.
func benchEstate(n int) (inventory.Inventory, []jit.Policy) {
	var inv inventory.Inventory
	const sub = "/subscriptions/00000000-0000-0000-0000-0000000bench0"
	policies := map[string]*jit.Policy{}
	var order []string
	for i := range n {
		rg := fmt.Sprintf("%s/resourceGroups/rg-%02d", sub, i%20)
		name := fmt.Sprintf("vm-%05d", i)
		nsgID := rg + "/providers/Microsoft.Network/networkSecurityGroups/" + name + "-nsg"
		nicID := rg + "/providers/Microsoft.Network/networkInterfaces/" + name + "-nic"
		vmID := rg + "/providers/Microsoft.Compute/virtualMachines/" + name
		rule := func(nm string, prio int, src, port string) netrule.SecurityRule {
			return netrule.SecurityRule{Name: nm, Priority: prio, Direction: netrule.Inbound, Access: netrule.Allow, Protocol: netrule.Tcp,
				SourceAddressPrefix: src, SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: port}
		}
		rules := []netrule.SecurityRule{rule("https", 100, netrule.TagInternet, "443"), rule("corp-rdp", 110, "203.0.113.0/24", "3389"),
			rule("vnet", 120, netrule.TagVirtualNetwork, "*")}
		if i%3 == 0 {
			rules = append(rules, rule("ssh", 130, netrule.TagInternet, "22"))
		}
		inv.NSGs = append(inv.NSGs, netrule.NSG{ID: nsgID, Name: name + "-nsg", Location: "westeurope", SecurityRules: rules})
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		inv.NICs = append(inv.NICs, inventory.NIC{ID: nicID, NSG: nsgID, PrivateIPs: []netip.Addr{ip}, PublicIPs: []netip.Addr{netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})}})
		inv.VMs = append(inv.VMs, inventory.VM{ID: vmID, Name: name, Cloud: inventory.Azure, Provider: inventory.ProviderSim, Location: "westeurope", NICs: []string{nicID}})
		if i%100 == 0 {
			pid := rg + "/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/default"
			p, ok := policies[pid]
			if !ok {
				p = &jit.Policy{ID: pid, Name: "default", Location: "westeurope"}
				policies[pid] = p
				order = append(order, pid)
			}
			p.VirtualMachines = append(p.VirtualMachines, jit.VMPolicy{ID: vmID, Ports: []jit.PortPolicy{
				{Number: 22, Protocol: netrule.Tcp, AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}}})
		}
	}
	var out []jit.Policy
	for _, id := range order {
		out = append(out, *policies[id])
	}
	return inv, out
}

// BenchmarkVMListPage10k renders the Virtual machines page (first page, the
// All tab; and a search) of a 10,000-VM estate through a real server over
// HTTP, signed in as the administrator. It reports the median (p50) and
// 90th percentile per request and the bytes transferred per page.
func BenchmarkVMListPage10k(b *testing.B) {
	srv, err := server.Start(context.Background(), server.Config{Listen: "127.0.0.1:0", DBPath: filepath.Join(b.TempDir(), "bench.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("DRAWBRIDGE_BENCH_VMS")); err == nil && v > 0 {
		n = v // a smaller estate to try the benchmark quickly
	}
	inv, policies := benchEstate(n)
	ctx := jit.WithActor(context.Background(), jit.Actor{Principal: "bench"})
	began := time.Now()
	if err := srv.Service.ApplyInventory(ctx, inv); err != nil {
		b.Fatal(err)
	}
	b.Logf("inventory of %d VMs applied in %v", n, time.Since(began))
	began = time.Now()
	for _, p := range policies {
		if _, err := srv.Service.PutPolicy(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d policies put in %v", len(policies), time.Since(began))
	t := &testing.T{}
	e := &env{t: t, srv: srv, admin: srv.AdminToken}
	br := e.browser()
	// A requester whose role is at one resource group: the list checks
	// vm.read on each of the 10,000 VMs and shows the 500 of rg-03.
	req := e.browser()
	req.signInTo(e.user("rita", nil, "/subscriptions/00000000-0000-0000-0000-0000000bench0/resourceGroups/rg-03", rbac.RoleJITRequester), "/console/access")
	br.signInTo(srv.AdminToken, "/console/access") // not the VM list: its first load is timed below
	began = time.Now()
	if st, body := br.get("/console/vms"); st != http.StatusOK || !strings.Contains(body, fmt.Sprintf("Showing 1–50 of %d", n)) {
		b.Fatalf("first VM list: %d, not the %d VMs", st, n)
	}
	b.Logf("first VM list page (reads the inventory and assesses it): %v", time.Since(began))
	if _, body := req.get("/console/vms"); !strings.Contains(body, fmt.Sprintf("of %d", n/20)) {
		b.Fatalf("the requester at rg-03 does not see its %d VMs", n/20)
	}
	for _, tc := range []struct {
		name, path string
		who        *browser
	}{
		{"all", "/console/vms", br},
		{"configured-page-2", "/console/vms?view=configured&page=2", br},
		{"search", "/console/vms?q=vm-0099", br},
		{"requester-one-rg", "/console/vms", req},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var times []time.Duration
			var bytes int
			cpu0 := cpuTime()
			for b.Loop() {
				start := time.Now()
				resp, err := tc.who.c.Get(srv.URL + tc.path)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				times = append(times, time.Since(start))
				if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Showing") {
					b.Fatalf("GET %s: %d", tc.path, resp.StatusCode)
				}
				bytes = len(body)
			}
			// CPU of the whole process (server and client) per page: what
			// a request costs, whatever else the machine is doing.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(len(times)), "cpu-ms/op")
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(times[len(times)*9/10].Microseconds())/1000, "p90-ms")
			b.ReportMetric(float64(bytes)/1024, "KB/page")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
