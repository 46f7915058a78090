package memstore

import (
	"context"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/jitrows"
)

// JIT policies and the index of which policy covers each VM.

func (t *tx) PutPolicy(ctx context.Context, p jit.Policy) error {
	if err := t.writable("put policy"); err != nil {
		return err
	}
	key, vmKeys, body, err := jitrows.EncodePolicy("memstore", p, func(vk string) (string, error) { return t.s.policyVMs[vk], nil })
	if err != nil {
		return err
	}
	if old, ok := t.s.policies[key]; ok {
		for _, vk := range old.vmKeys {
			del(t, t.s.policyVMs, vk)
		}
	}
	for _, vk := range vmKeys {
		set(t, t.s.policyVMs, vk, key)
	}
	set(t, t.s.policies, key, policyRow{location: strings.ToLower(p.Location), vmKeys: vmKeys, body: body})
	return nil
}

func (t *tx) GetPolicy(ctx context.Context, id string) (jit.Policy, error) {
	return get[jit.Policy](t, t.s.policies, strings.ToLower(id), "JIT policy", id)
}

func (t *tx) DeletePolicy(ctx context.Context, id string) error {
	if err := t.writable("delete policy"); err != nil {
		return err
	}
	key := strings.ToLower(id)
	row, ok := t.s.policies[key]
	if !ok {
		return store.NotFound("JIT policy", id)
	}
	for _, vk := range row.vmKeys {
		del(t, t.s.policyVMs, vk)
	}
	del(t, t.s.policies, key)
	return nil
}

func (t *tx) ListPolicies(ctx context.Context, scope, location string) ([]jit.Policy, error) {
	if t.done {
		return nil, errTxDone
	}
	sc := strings.TrimSuffix(strings.ToLower(scope), "/")
	loc := strings.ToLower(location)
	keys := keysWhere(t.s.policies, func(k string, row policyRow) bool {
		return (sc == "" || k == sc || strings.HasPrefix(k, sc+"/")) && (loc == "" || row.location == loc)
	}, byKey, 0)
	return decodeAll[jit.Policy](t.s.policies, keys)
}

func (t *tx) PolicyForVM(ctx context.Context, vmID string) (jit.Policy, error) {
	// A VM in no policy has key "", which no policy has (PutPolicy).
	return get[jit.Policy](t, t.s.policies, t.s.policyVMs[inventory.Key(vmID)], "JIT policy for virtual machine", vmID)
}

// Requests and grants
