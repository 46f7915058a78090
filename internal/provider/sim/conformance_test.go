package sim_test

import (
	"context"
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/providertest"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
)

// storeCloud is the simulated network's state: NSGs in the object store.
type storeCloud struct{ st *memstore.Store }

func (c storeCloud) NSG(t testing.TB, id string) netrule.NSG {
	t.Helper()
	var n netrule.NSG
	err := c.st.ObjectReadTx(context.Background(), func(o store.Objects) error {
		return o.GetObject(context.Background(), inventory.KindNSG, inventory.Key(id), &n)
	})
	if err != nil {
		t.Fatalf("NSG %s: %v", id, err)
	}
	return n
}

func (c storeCloud) DeleteRule(t testing.TB, nsgID, name string) {
	t.Helper()
	err := c.st.ObjectTx(context.Background(), func(o store.Objects) error {
		var n netrule.NSG
		if err := o.GetObject(context.Background(), inventory.KindNSG, inventory.Key(nsgID), &n); err != nil {
			return err
		}
		for i, r := range n.SecurityRules {
			if r.Name == name {
				n.SecurityRules = append(n.SecurityRules[:i], n.SecurityRules[i+1:]...)
				return o.PutObject(context.Background(), inventory.KindNSG, inventory.Key(nsgID), n)
			}
		}
		t.Fatalf("NSG %s has no rule %s", nsgID, name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestConformance runs the provider conformance suite on the in-process
// simulated provider.
func TestConformance(t *testing.T) {
	providertest.Run(t, func(t *testing.T) providertest.Harness {
		st := memstore.New()
		err := st.ObjectTx(context.Background(), func(o store.Objects) error {
			return inventory.Save(context.Background(), o, providertest.Inventory())
		})
		if err != nil {
			t.Fatal(err)
		}
		return providertest.Harness{Provider: sim.New(st), Cloud: storeCloud{st}}
	})
}
