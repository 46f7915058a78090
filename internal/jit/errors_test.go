package jit_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// racingStore runs race once, right after the first read-only transaction
// it served: a change that commits between a service's check and its write.
type racingStore struct {
	jit.Store
	once sync.Once
	race func()
}

func (s *racingStore) ReadTx(ctx context.Context, fn func(jit.Tx) error) error {
	err := s.Store.ReadTx(ctx, fn)
	s.once.Do(s.race)
	return err
}

// TestPutPolicyLosingARaceIsAConflict: a policy that claims a VM another
// policy claimed after the check (on another replica) is refused as a
// conflict naming the field, not an internal error, and stores nothing.
func TestPutPolicyLosingARaceIsAConflict(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	winner := jit.NewService(jit.Config{Store: f.store, Providers: jit.ProviderMap{"fake": f.prov}, Clock: f.clk, NewID: func() string { return "w" }})
	first := policyFor(vm1, ssh("*"))
	raced := false
	rs := &racingStore{Store: f.store, race: func() {
		_, err := winner.PutPolicy(ctx, first)
		raced = err == nil
	}}
	loser := jit.NewService(jit.Config{Store: rs, Providers: jit.ProviderMap{"fake": f.prov}, Clock: f.clk, NewID: func() string { return "l" }})
	other := policyFor(vm1, ssh("*"))
	other.Name = "other"
	other.ID = jit.PolicyID("s1", "rg1", "westeurope", "other")
	_, err := loser.PutPolicy(ctx, other)
	if !raced {
		t.Fatal("the racing PutPolicy did not commit")
	}
	var fe *jit.FieldError
	if !errors.Is(err, jit.ErrConflict) || !errors.As(err, &fe) || fe.Field != "properties.virtualMachines" {
		t.Fatalf("err = %v; want a conflict on properties.virtualMachines", err)
	}
	if _, err := f.svc.GetPolicy(ctx, other.ID); !errors.Is(err, jit.ErrNotFound) {
		t.Fatalf("the losing policy was stored: %v", err)
	}
	if p, err := f.svc.PolicyForVM(ctx, vm1); err != nil || p.ID != first.ID {
		t.Fatalf("vm1's policy = %s, %v; want the winner's", p.ID, err)
	}
}
