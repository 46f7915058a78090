package jit_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// countingStore counts the transactions of each kind the service runs.
type countingStore struct {
	jit.Store
	writes, reads atomic.Int64
}

func (s *countingStore) InTx(ctx context.Context, fn func(jit.Tx) error) error {
	s.writes.Add(1)
	return s.Store.InTx(ctx, fn)
}

func (s *countingStore) ReadTx(ctx context.Context, fn func(jit.Tx) error) error {
	s.reads.Add(1)
	return s.Store.ReadTx(ctx, fn)
}

// TestReadsUseReadTx: the service's read-only methods run read-only
// transactions, never a writing one (so they do not queue behind writes).
// The memstore refuses writes in ReadTx, so one of them that wrote would
// fail here too.
func TestReadsUseReadTx(t *testing.T) {
	f := newFixture(t)
	st := &countingStore{Store: f.store}
	svc := jit.NewService(jit.Config{Store: st, Providers: jit.ProviderMap{"fake": f.prov}, Clock: f.clk, NewID: func() string { return "rq1" }})
	ctx := context.Background()
	pol, err := svc.PutPolicy(ctx, policyFor(vm1, ssh("*")))
	if err != nil {
		t.Fatal(err)
	}
	req, err := svc.Initiate(ctx, alice, pol.ID, request(vm1, 22, "198.18.0.7", time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	reads := []struct {
		name string
		fn   func() error
	}{
		{"GetPolicy", func() error { _, err := svc.GetPolicy(ctx, pol.ID); return err }},
		{"ListPolicies", func() error { _, err := svc.ListPolicies(ctx, "/", ""); return err }},
		{"PolicyForVM", func() error { _, err := svc.PolicyForVM(ctx, vm1); return err }},
		{"ListRequests", func() error { _, err := svc.ListRequests(ctx, pol.ID, 0); return err }},
		{"ListGrants", func() error { _, err := svc.ListGrants(ctx, jit.GrantFilter{VMID: vm1}); return err }},
		{"GetGrant", func() error { _, err := svc.GetGrant(ctx, req.Grants[0].ID); return err }},
		{"ListVMs", func() error { _, err := svc.ListVMs(ctx); return err }},
		{"GetVM", func() error { _, err := svc.GetVM(ctx, vm1); return err }},
		{"Inventory", func() error { _, err := svc.Inventory(ctx); return err }},
		{"NextEndTime", func() error { _, _, err := svc.NextEndTime(ctx); return err }},
		{"DesiredFor", func() error { _, _, _, err := svc.DesiredFor(ctx, vm1); return err }},
		{"ListPendingRequests", func() error { _, err := svc.ListPendingRequests(ctx); return err }},
	}
	for _, r := range reads {
		w0, r0 := st.writes.Load(), st.reads.Load()
		if err := r.fn(); err != nil {
			t.Errorf("%s: %v", r.name, err)
			continue
		}
		if w := st.writes.Load() - w0; w != 0 {
			t.Errorf("%s ran %d writing transactions, want none", r.name, w)
		}
		if st.reads.Load() == r0 {
			t.Errorf("%s ran no read-only transaction", r.name)
		}
	}
}
