package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Generic objects (store.Objects), shared with jit.Tx, and the VMs kept in them.

type doc struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

func testObjects(t *testing.T, s Store) {
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		// Keys in byte order are "B" < "a" < "a/b" < "a0": key order is
		// byte order, as Go compares strings.
		for _, k := range []string{"a0", "a", "B", "a/b"} {
			if err := o.PutObject(ctx, "thing", k, doc{Name: k, N: len(k)}); err != nil {
				return err
			}
		}
		return o.PutObject(ctx, "other", "a", doc{Name: "other"})
	})
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		var d doc
		if err := o.GetObject(ctx, "thing", "a/b", &d); err != nil {
			return err
		}
		if d != (doc{Name: "a/b", N: 3}) {
			t.Errorf("GetObject = %+v", d)
		}
		wantNotFound(t, "GetObject missing key", o.GetObject(ctx, "thing", "zzz", &d))
		wantNotFound(t, "GetObject missing kind", o.GetObject(ctx, "nokind", "a", &d))
		var keys []string
		if err := o.ListObjects(ctx, "thing", func(key string, body []byte) error {
			var d doc
			if err := json.Unmarshal(body, &d); err != nil {
				return err
			}
			if d.Name != key {
				t.Errorf("ListObjects: key %q has body %s", key, body)
			}
			keys = append(keys, key)
			return nil
		}); err != nil {
			return err
		}
		if want := []string{"B", "a", "a/b", "a0"}; !slices.Equal(keys, want) {
			t.Errorf("ListObjects keys = %q, want %q", keys, want)
		}
		// Overwrite, delete, delete again (not an error).
		if err := o.PutObject(ctx, "thing", "a", doc{Name: "a", N: 100}); err != nil {
			return err
		}
		if err := o.GetObject(ctx, "thing", "a", &d); err != nil || d.N != 100 {
			t.Errorf("after overwrite: %+v, %v", d, err)
		}
		if err := o.DeleteObject(ctx, "thing", "a0"); err != nil {
			return err
		}
		if err := o.DeleteObject(ctx, "thing", "a0"); err != nil {
			t.Errorf("deleting a missing object: %v", err)
		}
		wantNotFound(t, "GetObject deleted", o.GetObject(ctx, "thing", "a0", &d))
		return nil
	})
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		count := func(kind string) []string {
			var keys []string
			if err := o.ListObjects(ctx, kind, func(key string, _ []byte) error {
				keys = append(keys, key)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return keys
		}
		if got := count("thing"); !slices.Equal(got, []string{"B", "a", "a/b"}) {
			t.Errorf("after delete: %q", got)
		}
		if got := count("other"); !slices.Equal(got, []string{"a"}) {
			t.Errorf("kind other: %q", got)
		}
		if got := count("nokind"); len(got) != 0 {
			t.Errorf("empty kind: %q", got)
		}
		stop := errors.New("stop")
		calls := 0
		err := o.ListObjects(ctx, "thing", func(string, []byte) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("ListObjects with failing fn: err %v after %d calls, want stop after 1", err, calls)
		}
		return nil
	})
}

// testObjectsShared checks that InTx's Tx and ObjectTx see the same objects.
func testObjectsShared(t *testing.T, s Store) {
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		return tx.PutObject(ctx, "k", "x", doc{Name: "from jit tx"})
	})
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		var d doc
		if err := o.GetObject(ctx, "k", "x", &d); err != nil {
			return err
		}
		if d.Name != "from jit tx" {
			t.Errorf("ObjectTx sees %+v", d)
		}
		return o.PutObject(ctx, "k", "y", doc{Name: "from object tx"})
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		var d doc
		if err := tx.GetObject(ctx, "k", "y", &d); err != nil {
			return err
		}
		if d.Name != "from object tx" {
			t.Errorf("InTx sees %+v", d)
		}
		return nil
	})
}

func testGetVM(t *testing.T, s Store) {
	id := vmID("s1", "RG1", "VM1")
	vm := inventory.VM{ID: id, Name: "VM1", Cloud: inventory.Azure, Provider: inventory.ProviderSim, Location: "westeurope", NICs: []string{id + "-nic"}}
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		return o.PutObject(ctx, inventory.KindVM, inventory.Key(id), vm)
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		got, err := inventory.GetVM(ctx, tx, strings.ToUpper(id))
		if err != nil {
			return err
		}
		sameJSON(t, "GetVM", got, vm)
		_, err = inventory.GetVM(ctx, tx, vmID("s1", "rg1", "nope"))
		wantNotFound(t, "GetVM missing", err)
		return nil
	})
}
