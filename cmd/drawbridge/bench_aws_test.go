package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/cloudsim/ec2sim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	awsprov "github.com/drawbridge/drawbridge/internal/provider/aws"
)

// BenchmarkInitiateToGroupAttached measures, through the whole server (API,
// store, aws provider, SDK, EC2 wire protocol), the time from sending an
// access request for an EC2 instance until the simulated EC2 account shows
// the grant's security group attached to the instance's ENI; p50 and p99
// over b.N requests, with no faults and with 10% of EC2 calls throttled
// (the SDK's default backoff retrying them).
func BenchmarkInitiateToGroupAttached(b *testing.B) {
	for _, tc := range []struct {
		name   string
		faults ec2sim.Faults
	}{{"clean", ec2sim.Faults{}}, {"throttle10pct", ec2sim.Faults{ThrottleRate: 0.1, Seed: 1}}} {
		b.Run(tc.name, func(b *testing.B) {
			sim, endpoint, srv := startAWS(b, awsprov.RetryOptions{})
			ctx := context.Background()
			c, err := client.New(srv.URL, srv.AdminToken)
			if err != nil {
				b.Fatal(err)
			}
			ec2c := awsprov.NewEndpointClient(endpoint, inventory.SampleAWSRegion, "AKIDE2E", "any-secret", awsprov.RetryOptions{})
			d, err := awsprov.Discover(ctx, ec2c, 0)
			if err != nil {
				b.Fatal(err)
			}
			doc, _ := d.Document()
			if _, err := c.ApplyInventory(ctx, doc); err != nil {
				b.Fatal(err)
			}
			vmID := inventory.AWSInstanceID(inventory.SampleAWSAccount, inventory.SampleAWSRegion, "i-0a1b2c3d4e5f60001")
			pid := jit.PolicyID("aws-"+inventory.SampleAWSAccount, inventory.SampleAWSRegion, inventory.SampleAWSRegion, "bench")
			if _, err := c.PutPolicy(ctx, pid, api.PolicyResource{Properties: api.PolicyProperties{VirtualMachines: []jit.VMPolicy{{
				ID: vmID, Ports: []jit.PortPolicy{{Number: 22, Protocol: netrule.Tcp, AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}}}}}}); err != nil {
				b.Fatal(err)
			}
			sim.SetFaults(tc.faults)
			var lat []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				req, err := c.Request(ctx, api.SimpleRequest{VM: vmID, Ports: []int{22}, Duration: "PT1H", Source: "198.18.0.9", Justification: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				grant := req.VirtualMachines[0].Ports[0].GrantID
				for !attached(sim, grant) {
					if time.Since(start) > time.Minute {
						b.Fatalf("grant %s not attached after a minute", grant)
					}
					time.Sleep(200 * time.Microsecond)
				}
				lat = append(lat, time.Since(start))
				b.StopTimer()
				if _, err := c.Revoke(ctx, grant); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
		})
	}
}

func attached(sim *ec2sim.Server, grantID string) bool {
	e, _ := sim.ENI("eni-0a1b2c3d4e5f60001")
	for _, id := range e.Groups {
		if g, ok := sim.Group(id); ok && hasTag(g.Tags, awsprov.TagGrant, grantID) {
			return true
		}
	}
	return false
}
