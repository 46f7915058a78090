package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/store"
	"pgregory.net/rapid"
)

// rawTx is a memTx that also gives and takes stored bytes as they are, as
// the SQLite store does (rawGetter, rawPutter): what plans need.
type rawTx struct{ *memTx }

func (t rawTx) GetObjectRaw(_ context.Context, kind, key string) ([]byte, error) {
	b, ok := t.data[kind][key]
	if !ok {
		return nil, fmt.Errorf("%s %s: %w", kind, key, store.ErrNotFound)
	}
	return b, nil
}

func (t rawTx) PutObjectRaw(_ context.Context, kind, key string, body []byte) error {
	if !json.Valid(body) {
		return fmt.Errorf("put %s %s: not JSON", kind, key)
	}
	if t.data[kind] == nil {
		t.data[kind] = map[string][]byte{}
	}
	t.data[kind][key] = slices.Clone(body)
	t.writes++
	return nil
}

// rawTx runs fn on m as a raw transaction, committed if commit and fn
// succeeds.
func (m *memStore) rawTx(commit bool, fn func(rawTx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	tx := rawTx{&memTx{data: m.copyData()}}
	if err := fn(tx); err != nil || !commit {
		return err
	}
	m.data = tx.data
	m.writes += tx.writes
	return nil
}

func (m *memStore) clone() *memStore {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &memStore{data: m.copyData()}
}

// A plan made from a snapshot and applied to the same state writes exactly
// what ApplyTx writes and reports the same grants enforced; once anything
// it read has changed, it writes nothing and says so.
func TestPropertyPlanIsApplyTx(t *testing.T) {
	applied, stale := 0, 0
	rapid.Check(t, func(t *rapid.T) {
		m := newMemStore()
		nsg := azID("nsg", "nic-nsg")
		m.put(t, inventory.KindNSG, nsg, genNSG(t, "nic-nsg"))
		vm := azureVM(t, m, "vm1", vmAddr.String(), "default", "", nsg)
		p := New(m)
		guarded := genGuarded(t)
		en := jit.Desired{VMID: vm.ID, Guarded: guarded}
		if _, err := p.Apply(ctx, vm, en); err != nil {
			t.Skip("enable failed:", err) // no room: covered by the lifecycle tests
		}
		d := jit.Desired{VMID: vm.ID, Guarded: guarded, Grants: genGrants(t, guarded)}

		var pl jit.TxPlan
		var planErr error
		_ = m.rawTx(false, func(tx rawTx) error { pl, planErr = p.PlanTx(ctx, tx, vm, d); return nil })
		ref := m.clone()
		var want jit.Observed
		applyErr := ref.rawTx(true, func(tx rawTx) error { var err error; want, err = p.ApplyTx(ctx, tx, vm, d); return err })
		if (planErr == nil) != (applyErr == nil) {
			t.Fatalf("PlanTx said %v, ApplyTx said %v", planErr, applyErr)
		}
		if planErr != nil {
			return
		}
		if pl == nil {
			t.Fatal("no plan for a VM with a footprint")
		}

		if rapid.Bool().Draw(t, "stale") {
			// Someone changes the NSG between plan and apply.
			n := getObj[netrule.NSG](t, m, inventory.KindNSG, nsg)
			n.SecurityRules = append(n.SecurityRules, netrule.SecurityRule{Name: "late", Priority: 4000, Direction: netrule.Inbound,
				Access: netrule.Allow, Protocol: netrule.Tcp, SourceAddressPrefix: "*", SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "8080"})
			m.put(t, inventory.KindNSG, nsg, n)
			before := m.snap()
			err := m.rawTx(true, func(tx rawTx) error {
				_, ok, err := pl.ApplyIfCurrent(ctx, tx)
				if err == nil && ok {
					return fmt.Errorf("a stale plan applied")
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if d := diff(before, m.snap()); d != "" {
				t.Fatalf("a stale plan wrote:\n%s", d)
			}
			stale++
			return
		}
		var got jit.Observed
		err := m.rawTx(true, func(tx rawTx) error {
			obs, ok, err := pl.ApplyIfCurrent(ctx, tx)
			if err == nil && !ok {
				return fmt.Errorf("a current plan did not apply")
			}
			got = obs
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if d := diff(ref.snap(), m.snap()); d != "" {
			t.Fatalf("plan and ApplyTx wrote different states:\n%s", d)
		}
		if !slices.Equal(got.Enforced, want.Enforced) {
			t.Fatalf("plan enforced %v, ApplyTx %v", got.Enforced, want.Enforced)
		}
		applied++
	})
	if applied == 0 || stale == 0 {
		t.Fatalf("%d plans applied, %d found stale: the test did not exercise both", applied, stale)
	}
}
