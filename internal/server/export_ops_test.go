package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// downStore fails every transaction as a lost database would while down is set.
type downStore struct {
	backend
	down *atomic.Bool
}

func (d downStore) err() error {
	if d.down.Load() {
		return fmt.Errorf("test: connection refused: %w", store.ErrUnavailable)
	}
	return nil
}

func (d downStore) InTx(ctx context.Context, fn func(jit.Tx) error) error {
	if err := d.err(); err != nil {
		return err
	}
	return d.backend.InTx(ctx, fn)
}

func (d downStore) ReadTx(ctx context.Context, fn func(jit.Tx) error) error {
	if err := d.err(); err != nil {
		return err
	}
	return d.backend.ReadTx(ctx, fn)
}

func (d downStore) ObjectTx(ctx context.Context, fn func(store.Objects) error) error {
	if err := d.err(); err != nil {
		return err
	}
	return d.backend.ObjectTx(ctx, fn)
}

func (d downStore) ObjectReadTx(ctx context.Context, fn func(store.Objects) error) error {
	if err := d.err(); err != nil {
		return err
	}
	return d.backend.ObjectReadTx(ctx, fn)
}

func (d downStore) SchemaVersion(ctx context.Context) (int, error) {
	if err := d.err(); err != nil {
		return 0, err
	}
	return d.backend.(schemaVersioner).SchemaVersion(ctx)
}

func (d downStore) LatestSchemaVersion() int {
	return d.backend.(schemaVersioner).LatestSchemaVersion()
}

// StoreSwitch makes the next Start wrap its (SQLite) store so that setting
// the returned flag takes the database away. Not for parallel tests.
func StoreSwitch(t *testing.T) *atomic.Bool {
	down := new(atomic.Bool)
	testWrapStore = func(b backend) backend { return downStore{b, down} }
	t.Cleanup(func() { testWrapStore = nil })
	return down
}
