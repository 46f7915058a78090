package aws_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/cloudsim/ec2sim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	awsprov "github.com/drawbridge/drawbridge/internal/provider/aws"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
)

// seedFleet puts n instances in the simulator, each with its own ENI and
// its own security group allowing SSH and HTTPS from anywhere.
func seedFleet(sim *ec2sim.Server, n, groups int) []inventory.VM {
	vms := make([]inventory.VM, 0, n)
	for i := 0; i < groups; i++ {
		sim.PutGroup(ec2sim.Group{ID: fmt.Sprintf("sg-%017x", i), Name: fmt.Sprintf("app-%d", i), Description: "app", VpcID: "vpc-1",
			Ingress: []ec2sim.Rule{{Protocol: "tcp", From: 22, To: 22, CIDRv4: "0.0.0.0/0"}, {Protocol: "tcp", From: 443, To: 443, CIDRv4: "0.0.0.0/0"}}})
	}
	for i := 0; i < n; i++ {
		id, eni := fmt.Sprintf("i-%017x", i), fmt.Sprintf("eni-%017x", i)
		sim.PutENI(ec2sim.ENI{ID: eni, VpcID: "vpc-1", SubnetID: "subnet-1", InstanceID: id, PrivateIP: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
			Groups: []string{fmt.Sprintf("sg-%017x", i%groups)}})
		sim.PutInstance(ec2sim.Instance{ID: id, VpcID: "vpc-1", SubnetID: "subnet-1", ENIs: []string{eni}, Tags: []ec2sim.Tag{{Key: "Name", Value: fmt.Sprintf("app-%d", i)}}})
		vms = append(vms, inventory.VM{ID: inventory.AWSInstanceID("123456789012", "us-east-1", id), Cloud: inventory.AWS, Provider: inventory.ProviderAWS,
			InstanceID: id, ENIs: []string{eni}})
	}
	return vms
}

// BenchmarkEnable1000UnderThrottle enables JIT (tcp/22) on 1,000 instances,
// 16 at a time, against an EC2-like token bucket of 100 requests/s (burst
// 200) with the SDK's default backoff. It reports the time, the failures
// (must be 0), the throttled requests and the bound the bucket sets
// (requests that succeeded, less the burst, over the rate).
func BenchmarkEnable1000UnderThrottle(b *testing.B) {
	for i := 0; i < b.N; i++ {
		sim := ec2sim.New(ec2sim.Options{AccessKey: "AKIDBENCH", Region: "us-east-1"})
		ts := httptest.NewServer(sim)
		vms := seedFleet(sim, 1000, 1000)
		const rate, burst = 100.0, 200
		sim.SetFaults(ec2sim.Faults{RatePerSecond: rate, Burst: burst})
		p := awsprov.New(awsprov.NewEndpointClient(ts.URL, "us-east-1", "AKIDBENCH", "s", awsprov.RetryOptions{MaxAttempts: 30}), memstore.New())
		start := time.Now()
		var failed atomic.Int64
		var wg sync.WaitGroup
		work := make(chan inventory.VM)
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for vm := range work {
					d := jit.Desired{VMID: vm.ID, Guarded: []jit.GuardedPort{{Port: 22, Protocol: netrule.Tcp}}}
					if _, err := p.Apply(context.Background(), vm, d); err != nil {
						failed.Add(1)
						b.Logf("%s: %v", vm.InstanceID, err)
					}
				}
			}()
		}
		for _, vm := range vms {
			work <- vm
		}
		close(work)
		wg.Wait()
		took := time.Since(start)
		ok := sim.Requests() - sim.Throttled()
		b.ReportMetric(took.Seconds(), "s/1000-enables")
		b.ReportMetric(float64(failed.Load()), "failures")
		b.ReportMetric(float64(sim.Throttled()), "throttled-requests")
		b.ReportMetric(float64(ok-burst)/rate, "bound-s")
		ts.Close()
		if failed.Load() > 0 {
			b.Fatalf("%d enables failed", failed.Load())
		}
		for _, vm := range vms[:10] {
			e, _ := sim.ENI(vm.ENIs[0])
			g, _ := sim.Group(e.Groups[0])
			if len(g.Ingress) != 1 || g.Ingress[0].From != 443 {
				b.Fatalf("%s not enabled: %+v", vm.InstanceID, g.Ingress)
			}
		}
	}
}

// BenchmarkDiscover10000 discovers 10,000 instances (10,000 ENIs, 500
// groups) through the SDK's paginators, 1,000 per page, and builds the
// inventory document; it reports the time, the bytes allocated and the
// document's size.
func BenchmarkDiscover10000(b *testing.B) {
	sim := ec2sim.New(ec2sim.Options{AccessKey: "AKIDBENCH", Region: "us-east-1"})
	ts := httptest.NewServer(sim)
	defer ts.Close()
	seedFleet(sim, 10000, 500)
	c := awsprov.NewEndpointClient(ts.URL, "us-east-1", "AKIDBENCH", "s", awsprov.RetryOptions{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		d, err := awsprov.Discover(context.Background(), c, 1000)
		if err != nil {
			b.Fatal(err)
		}
		doc, err := d.Document()
		if err != nil {
			b.Fatal(err)
		}
		inv, err := inventory.Parse(doc)
		if err != nil {
			b.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		if len(inv.VMs) != 10000 {
			b.Fatalf("%d VMs", len(inv.VMs))
		}
		b.ReportMetric(float64(len(doc))/1e6, "MB-document")
		b.ReportMetric(float64(after.HeapInuse)/1e6, "MB-heap-in-use-after")
	}
}
