package inventory

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Save validates inv and stores each of its objects under its kind with
// Key(id) (a setting under Key(scope)), replacing objects with the same key.
// Objects not in inv are left alone. An invalid inventory is rejected before
// anything is written; callers run Save inside store.ObjectStore.ObjectTx so
// that a storage failure half-way leaves nothing either.
func Save(ctx context.Context, objs store.Objects, inv Inventory) error {
	if err := Validate(inv); err != nil {
		return err
	}
	put := func(kind, id string, v any) error {
		if err := objs.PutObject(ctx, kind, Key(id), v); err != nil {
			return fmt.Errorf("storing %s %s: %w", kind, id, err)
		}
		return nil
	}
	for _, o := range inv.VMs {
		if err := put(KindVM, o.ID, o); err != nil {
			return err
		}
	}
	for _, o := range inv.NICs {
		if err := put(KindNIC, o.ID, o); err != nil {
			return err
		}
	}
	for _, o := range inv.VirtualNetworks {
		if err := put(KindVirtualNetwork, o.ID, o); err != nil {
			return err
		}
	}
	for _, o := range inv.Subnets {
		if err := put(KindSubnet, o.ID, o); err != nil {
			return err
		}
	}
	for _, o := range inv.NSGs {
		if err := put(KindNSG, o.ID, o); err != nil {
			return err
		}
	}
	for _, o := range inv.Firewalls {
		if err := put(KindFirewall, o.ID, o); err != nil {
			return err
		}
	}
	for _, o := range inv.ENIs {
		if err := put(KindENI, o.ID, o); err != nil {
			return err
		}
	}
	for _, o := range inv.SecurityGroups {
		if err := put(KindSecurityGroup, o.GroupID, o); err != nil {
			return err
		}
	}
	for _, o := range inv.Settings {
		if err := put(KindSetting, o.Scope, o); err != nil {
			return err
		}
	}
	return nil
}

// GetVM reads one VM by resource ID (case-insensitive); store.ErrNotFound
// if there is none.
func GetVM(ctx context.Context, objs store.Objects, id string) (VM, error) {
	var vm VM
	err := objs.GetObject(ctx, KindVM, Key(id), &vm)
	return vm, err
}

// LoadAll reads every inventory object back, each list in key order. It does
// not validate: the store holds what Save (and the simulated provider, which
// edits NSGs and security groups) wrote.
func LoadAll(ctx context.Context, objs store.Objects) (Inventory, error) {
	var inv Inventory
	if err := loadKind(ctx, objs, KindVM, &inv.VMs); err != nil {
		return Inventory{}, err
	}
	if err := loadKind(ctx, objs, KindNIC, &inv.NICs); err != nil {
		return Inventory{}, err
	}
	if err := loadKind(ctx, objs, KindVirtualNetwork, &inv.VirtualNetworks); err != nil {
		return Inventory{}, err
	}
	if err := loadKind(ctx, objs, KindSubnet, &inv.Subnets); err != nil {
		return Inventory{}, err
	}
	if err := loadKind(ctx, objs, KindNSG, &inv.NSGs); err != nil {
		return Inventory{}, err
	}
	if err := loadKind(ctx, objs, KindFirewall, &inv.Firewalls); err != nil {
		return Inventory{}, err
	}
	if err := loadKind(ctx, objs, KindENI, &inv.ENIs); err != nil {
		return Inventory{}, err
	}
	if err := loadKind[netrule.SecurityGroup](ctx, objs, KindSecurityGroup, &inv.SecurityGroups); err != nil {
		return Inventory{}, err
	}
	if err := loadKind(ctx, objs, KindSetting, &inv.Settings); err != nil {
		return Inventory{}, err
	}
	return inv, nil
}

// LoadVMs reads the inventory's VMs only, in key order.
func LoadVMs(ctx context.Context, objs store.Objects) ([]VM, error) {
	var vms []VM
	return vms, loadKind(ctx, objs, KindVM, &vms)
}

func loadKind[T any](ctx context.Context, objs store.Objects, kind string, into *[]T) error {
	return objs.ListObjects(ctx, kind, func(key string, body []byte) error {
		var v T
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("reading stored %s %s: %w", kind, key, err)
		}
		*into = append(*into, v)
		return nil
	})
}
