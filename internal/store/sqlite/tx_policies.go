package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store/jitrows"
)

func (t *tx) PutPolicy(ctx context.Context, p jit.Policy) error {
	_, _, err := t.putPolicy(p)
	return err
}

// putPolicy is PutPolicy; it also returns the policy's key and body as
// stored.
func (t *tx) putPolicy(p jit.Policy) (key string, body []byte, err error) {
	// Every VM is checked before anything is written, so a conflict leaves
	// the stored policy as it was even if the caller commits regardless.
	key, vmKeys, body, err := jitrows.EncodePolicy("sqlite", p, t.policyKeyOfVM)
	if err != nil {
		return "", nil, err
	}
	if _, err := t.stmt(qPutPolicy).ExecContext(noCancel, key, strings.ToLower(p.Location), body); err != nil {
		return "", nil, fmt.Errorf("sqlite: put policy %s: %w", p.ID, err)
	}
	if _, err := t.stmt(qClearPolicyVM).ExecContext(noCancel, key); err != nil {
		return "", nil, fmt.Errorf("sqlite: put policy %s: %w", p.ID, err)
	}
	for _, vk := range vmKeys {
		if _, err := t.stmt(qAddPolicyVM).ExecContext(noCancel, vk, key); err != nil {
			return "", nil, fmt.Errorf("sqlite: put policy %s: index vm %s: %w", p.ID, vk, err)
		}
	}
	return key, body, nil
}

func (t *tx) GetPolicy(ctx context.Context, id string) (jit.Policy, error) {
	p, _, err := t.onePolicy(ctx, qGetPolicy, strings.ToLower(id), "JIT policy", id)
	return p, err
}

func (t *tx) decodePolicy(body []byte) (jit.Policy, error) {
	p, err := decodeRow[jit.Policy](t.memo)(body)
	if err != nil {
		return jit.Policy{}, fmt.Errorf("sqlite: decode policy: %w", err)
	}
	return p, nil
}

// onePolicy runs a query selecting one policy body and decodes it; it also
// returns the body as stored.
func (t *tx) onePolicy(ctx context.Context, query, arg, what, id string) (jit.Policy, []byte, error) {
	body, err := t.oneBody(query, what, id, arg)
	if err != nil {
		return jit.Policy{}, nil, err
	}
	p, err := t.decodePolicy(body)
	return p, body, err
}

// DeletePolicy removes the policy and, by cascade, its VM index rows.
// Requests and grants stay: they are the history of access.
func (t *tx) DeletePolicy(ctx context.Context, id string) error {
	return t.execRow("delete policy", "JIT policy", id, qDeletePolicy, strings.ToLower(id))
}

func (t *tx) ListPolicies(ctx context.Context, scope, location string) ([]jit.Policy, error) {
	s := strings.TrimSuffix(strings.ToLower(scope), "/")
	rows, err := t.stmt(qListPolicies).QueryContext(noCancel, s, s+"/", s+"0", strings.ToLower(location))
	return scanAll(rows, err, "policies", decodeRow[jit.Policy](t.memo))
}

func (t *tx) PolicyForVM(ctx context.Context, vmID string) (jit.Policy, error) {
	p, _, err := t.onePolicy(ctx, qPolicyForVM, inventory.Key(vmID), "JIT policy for virtual machine", vmID)
	return p, err
}

// policyKeyOfVM returns the key of the policy covering the VM with key vk,
// or "" if none does.
func (t *tx) policyKeyOfVM(vk string) (string, error) {
	var key string
	err := t.stmt(qPolicyOfVM).QueryRowContext(noCancel, vk).Scan(&key)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return key, err
}
