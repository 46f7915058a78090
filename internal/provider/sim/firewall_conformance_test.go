package sim_test

import (
	"context"
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/store"
)

func (c storeCloud) Firewall(t testing.TB, id string) inventory.Firewall {
	t.Helper()
	var f inventory.Firewall
	err := c.st.ObjectReadTx(context.Background(), func(o store.Objects) error {
		return o.GetObject(context.Background(), inventory.KindFirewall, inventory.Key(id), &f)
	})
	if err != nil {
		t.Fatalf("firewall %s: %v", id, err)
	}
	return f
}

// AddNatCollection edits the firewall at once: the simulated provider
// reads and writes in one transaction, so no edit can land between them.
func (c storeCloud) AddNatCollection(t testing.TB, id string, col inventory.NatRuleCollection, _ bool) {
	t.Helper()
	err := c.st.ObjectTx(context.Background(), func(o store.Objects) error {
		var f inventory.Firewall
		if err := o.GetObject(context.Background(), inventory.KindFirewall, inventory.Key(id), &f); err != nil {
			return err
		}
		f.NatRuleCollections = append(f.NatRuleCollections, col)
		return o.PutObject(context.Background(), inventory.KindFirewall, inventory.Key(id), f)
	})
	if err != nil {
		t.Fatal(err)
	}
}
