package api_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/clock"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
)

// flakyStore fails every transaction as a lost database would while down is set.
type flakyStore struct {
	*memstore.Store
	down atomic.Bool
}

func (f *flakyStore) InTx(ctx context.Context, fn func(jit.Tx) error) error {
	if f.down.Load() {
		return fmt.Errorf("postgres: connection refused: %w", store.ErrUnavailable)
	}
	return f.Store.InTx(ctx, fn)
}

func (f *flakyStore) ReadTx(ctx context.Context, fn func(jit.Tx) error) error {
	if f.down.Load() {
		return fmt.Errorf("postgres: connection refused: %w", store.ErrUnavailable)
	}
	return f.Store.ReadTx(ctx, fn)
}

func TestDatabaseLostAnswers503AndRecovers(t *testing.T) {
	st := &flakyStore{Store: memstore.New()}
	simProv := sim.New(st.Store)
	svc := jit.NewService(jit.Config{Store: st, Providers: jit.ProviderMap{inventory.ProviderSim: simProv}, Clock: clock.Real{}, NewID: func() string { return "x" }})
	if err := svc.ApplyInventory(context.Background(), inventory.Sample()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(validated(t, api.New(api.Config{Service: svc, Network: simProv})))
	defer srv.Close()
	e := &env{t: t, srv: srv}

	st.down.Store(true)
	code, body := e.do("GET", polURL, "")
	if code != 503 {
		t.Fatalf("status = %d, want 503: %v", code, body)
	}
	if c, _, msg := errorOf(t, body); c != "DatabaseUnavailable" || msg == "" {
		t.Fatalf("error = %s %q", c, msg)
	}
	st.down.Store(false)
	if code, body := e.do("PUT", polURL, azurePolicyBody(web01, 22)); code != 200 {
		t.Fatalf("after the database is back: %d %v", code, body)
	}
}
