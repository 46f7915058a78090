package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// benchVMs VMs in policies of vmsPerPolicy each: a realistic policy size,
// since the request path decodes the whole policy.
const benchVMs, vmsPerPolicy = 1000, 5

// benchOptions are the options benchStore opens stores with
// (BenchmarkTuningAB switches them).
var benchOptions Options

var benchT0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func benchVM(i int) string {
	return fmt.Sprintf("/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm%d", i)
}

func benchPolicyID(vm int) string {
	return jit.PolicyID("s1", "rg1", "westeurope", fmt.Sprintf("p%d", vm/vmsPerPolicy))
}

// benchStore opens a file database holding benchVMs VMs and their policies.
func benchStore(b *testing.B) *Store {
	b.Helper()
	ctx := context.Background()
	s, err := OpenWith(ctx, filepath.Join(b.TempDir(), "bench.db"), benchOptions)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	err = s.InTx(ctx, func(tx jit.Tx) error {
		var p jit.Policy
		for i := range benchVMs {
			id := benchVM(i)
			if err := tx.PutObject(ctx, inventory.KindVM, inventory.Key(id), inventory.VM{ID: id, Cloud: inventory.Azure, Provider: "sim"}); err != nil {
				return err
			}
			if i%vmsPerPolicy == 0 {
				p = jit.Policy{ID: benchPolicyID(i), Name: fmt.Sprintf("p%d", i/vmsPerPolicy), Location: "westeurope"}
			}
			p.VirtualMachines = append(p.VirtualMachines, jit.VMPolicy{ID: id, Ports: []jit.PortPolicy{
				{Number: 22, Protocol: netrule.Tcp, AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"},
				{Number: 3389, Protocol: netrule.Tcp, AllowedSourceAddressPrefix: "198.18.0.0/15", MaxRequestAccessDuration: "PT3H"},
			}})
			if err := tx.PutPolicy(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// requestTx is the JIT service's initiate transaction: read the policy and
// the VM, list the VM's active grants, supersede the one on the same port,
// insert the request with its grant.
func requestTx(ctx context.Context, s *Store, n int64) error {
	vmi := int(n % benchVMs)
	vm, policyID := benchVM(vmi), benchPolicyID(vmi)
	now := benchT0.Add(time.Duration(n) * time.Millisecond)
	id := fmt.Sprintf("r%d", n)
	return s.InTx(ctx, func(tx jit.Tx) error {
		p, err := tx.GetPolicy(ctx, policyID)
		if err != nil {
			return err
		}
		if _, err := inventory.GetVM(ctx, tx, vm); err != nil {
			return err
		}
		active, err := tx.ListGrants(ctx, jit.GrantFilter{VMID: vm, ActiveOnly: true})
		if err != nil {
			return err
		}
		for _, g := range active {
			if g.Port == 22 {
				ended, err := g.End(jit.ReasonNewerRequestInitiated, now)
				if err != nil {
					return err
				}
				if err := tx.UpdateGrant(ctx, ended); err != nil {
					return err
				}
			}
		}
		src, _ := jit.ParseSource("198.18.0.1")
		return tx.InsertRequest(ctx, jit.Request{
			ID: id, PolicyID: p.ID, Requestor: "alice", StartTime: now,
			Grants: []jit.Grant{{
				ID: "g" + id, PolicyID: p.ID, VMID: vm, Port: 22, Protocol: "TCP", Source: src,
				StartTime: now, EndTime: now.Add(3 * time.Hour), Status: jit.StatusInitiated, StatusReason: jit.ReasonUserRequested,
			}},
		})
	})
}

// processCPU returns the CPU time (user+system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds cpu-ns/op: the process's CPU time per operation. Unlike
// ns/op (wall time) it hardly changes when other processes load the
// machine, and on an idle machine it is what bounds throughput per core.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkInsertRequestTx is one initiate transaction at a time.
func BenchmarkInsertRequestTx(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	b.ResetTimer()
	cpu := processCPU(b)
	for i := range b.N {
		if err := requestTx(ctx, s, int64(i)); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkInsertRequestParallel runs initiate transactions from many
// goroutines through the writer's group commits.
func BenchmarkInsertRequestParallel(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(8) // 8 goroutines per CPU
	b.ResetTimer()
	cpu := processCPU(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := requestTx(ctx, s, n.Add(1)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportCPU(b, cpu)
}

// BenchmarkDueGrants asks for a batch of due grants among 100,000 grants of
// which 1,000 are due, as the expiry job does.
func BenchmarkDueGrants(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	const total, due = 100000, 1000
	err := s.InTx(ctx, func(tx jit.Tx) error {
		for i := range total {
			end := benchT0.Add(time.Duration(due-i) * time.Second) // the first `due` end at or before benchT0
			id := fmt.Sprintf("r%d", i)
			if err := tx.InsertRequest(ctx, jit.Request{ID: id, PolicyID: benchPolicyID(i % benchVMs), StartTime: benchT0.Add(-time.Hour), Grants: []jit.Grant{{
				ID: "g" + id, VMID: benchVM(i % benchVMs), Port: 22, StartTime: benchT0.Add(-time.Hour), EndTime: end,
				Status: jit.StatusInitiated,
			}}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cpu := processCPU(b)
	for range b.N {
		err := s.InTx(ctx, func(tx jit.Tx) error {
			gs, err := tx.DueGrants(ctx, benchT0, 100)
			if err != nil {
				return err
			}
			if len(gs) != 100 {
				return fmt.Errorf("%d due grants, want 100", len(gs))
			}
			_, _, err = tx.NextEndTime(ctx)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}
