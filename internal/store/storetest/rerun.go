package storetest

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Rerun wraps a store so that every writing transaction's function runs
// twice: first in a transaction Rerun rolls back, then for real. Backends
// may do this (the SQLite store runs a group commit's transactions again
// when one of them fails after writing; PostgreSQL retries serialisation
// failures), so a function must start from a clean slate on every run.
// A test runs a scenario on Rerun and on the store alone and compares.
type Rerun struct {
	Store
	reruns atomic.Int64
}

// NewRerun wraps b.
func NewRerun(b Store) *Rerun { return &Rerun{Store: b} }

// Reruns counts the transactions that ran twice.
func (s *Rerun) Reruns() int64 { return s.reruns.Load() }

var errRollBackToRerun = errors.New("rolled back to run again")

func (s *Rerun) InTx(ctx context.Context, fn func(jit.Tx) error) error {
	return rerun(s, func(f func(jit.Tx) error) error { return s.Store.InTx(ctx, f) }, fn)
}

func (s *Rerun) ObjectTx(ctx context.Context, fn func(store.Objects) error) error {
	return rerun(s, func(f func(store.Objects) error) error { return s.Store.ObjectTx(ctx, f) }, fn)
}

// rerun runs fn through run twice: first rolled back (if it succeeds),
// then for real.
func rerun[T any](s *Rerun, run func(func(T) error) error, fn func(T) error) error {
	err := run(func(tx T) error { return thenRollBack(fn(tx)) })
	if !errors.Is(err, errRollBackToRerun) {
		return err
	}
	s.reruns.Add(1)
	return run(fn)
}

// thenRollBack turns a function's success into the error that rolls its
// transaction back for Rerun to run it again.
func thenRollBack(err error) error {
	if err != nil {
		return err
	}
	return errRollBackToRerun
}
