package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
)

// TestFollow: a grant inserted or ended through one store reaches a
// follower on another store with the VM's key, after commit only; an
// update that does not change the status (bookkeeping) is not announced;
// a rolled-back transaction announces nothing.
func TestFollow(t *testing.T) {
	a := openTemp(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := Open(ctx, a.pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make(chan string, 100)
	go b.Follow(ctx, func(vm string) { got <- vm })
	if v := <-got; v != "" {
		t.Fatalf("first call %q, want \"\" (connected)", v)
	}
	vm := "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/VM1"
	pid := jit.PolicyID("s1", "rg1", "westeurope", "p")
	expect := func(what, want string) time.Duration {
		t.Helper()
		start := time.Now()
		select {
		case v := <-got:
			if v != want {
				t.Errorf("%s: notified %q, want %q", what, v, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no notification", what)
		}
		return time.Since(start)
	}
	none := func(what string) {
		t.Helper()
		select {
		case v := <-got:
			t.Errorf("%s: unexpected notification %q", what, v)
		case <-time.After(200 * time.Millisecond):
		}
	}
	now := time.Now().UTC()
	if err := a.InTx(ctx, func(tx jit.Tx) error {
		return tx.PutPolicy(ctx, jit.Policy{ID: pid, Name: "p", VirtualMachines: []jit.VMPolicy{{ID: vm}}})
	}); err != nil {
		t.Fatal(err)
	}
	expect("put policy", inventory.Key(vm))
	start := time.Now()
	if err := a.InTx(ctx, func(tx jit.Tx) error {
		return tx.InsertRequest(ctx, jit.Request{ID: "r1", PolicyID: pid, StartTime: now, Grants: []jit.Grant{
			{ID: "g1", VMID: vm, Port: 22, StartTime: now, EndTime: now.Add(time.Hour), Status: jit.StatusInitiated},
			{ID: "g2", VMID: vm, Port: 3389, StartTime: now, EndTime: now.Add(time.Hour), Status: jit.StatusInitiated}}})
	}); err != nil {
		t.Fatal(err)
	}
	expect("insert request", inventory.Key(vm))
	t.Logf("commit to notification on the other store: %v", time.Since(start))
	none("one notification per VM per transaction")
	_ = a.InTx(ctx, func(tx jit.Tx) error {
		g, _ := tx.GetGrant(ctx, "g1")
		g, _ = g.End(jit.ReasonUserRequested, now)
		tx.UpdateGrant(ctx, g)
		return context.Canceled // roll back
	})
	none("rolled back")
	if err := a.InTx(ctx, func(tx jit.Tx) error {
		g, err := tx.GetGrant(ctx, "g1")
		if err != nil {
			return err
		}
		g.Applied, g.AppliedAt = true, now
		return tx.UpdateGrant(ctx, g)
	}); err != nil {
		t.Fatal(err)
	}
	none("bookkeeping update")
	if err := a.InTx(ctx, func(tx jit.Tx) error {
		g, err := tx.GetGrant(ctx, "g1")
		if err != nil {
			return err
		}
		g, err = g.End(jit.ReasonUserRequested, now)
		if err != nil {
			return err
		}
		return tx.UpdateGrant(ctx, g)
	}); err != nil {
		t.Fatal(err)
	}
	expect("grant ended", inventory.Key(vm))
}
