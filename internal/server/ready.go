package server

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"encoding/json"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// readiness answers /readyz: ready only while the store answers, its
// schema is the one this build migrates to, the expiry job runs and the
// server is not shutting down. /healthz stays a liveness check (the
// process serves HTTP), so an orchestrator restarts a hung process but
// only stops routing to one whose database is away.
type readiness struct {
	st       backend
	expiry   atomic.Bool // the expiry job's loop is running
	stopping atomic.Bool
	timeout  time.Duration
}

type schemaVersioner interface {
	SchemaVersion(ctx context.Context) (int, error)
	LatestSchemaVersion() int
}

// problems lists why the server is not ready (none: ready).
func (rd *readiness) problems(ctx context.Context) []string {
	var out []string
	if rd.stopping.Load() {
		out = append(out, "shutting down")
	}
	ctx, cancel := context.WithTimeout(ctx, rd.timeout)
	defer cancel()
	err := rd.st.ReadTx(ctx, func(tx jit.Tx) error {
		_, err := tx.ListGrants(ctx, jit.GrantFilter{ActiveOnly: true, Limit: 1})
		return err
	})
	if err != nil {
		out = append(out, "store: "+err.Error())
	} else if sv, ok := rd.st.(schemaVersioner); ok {
		v, err := sv.SchemaVersion(ctx)
		switch {
		case err != nil:
			out = append(out, "store: reading the schema version: "+err.Error())
		case v != sv.LatestSchemaVersion():
			out = append(out, fmt.Sprintf("migrations: the database schema is version %d, this build runs version %d", v, sv.LatestSchemaVersion()))
		}
	}
	if !rd.expiry.Load() {
		out = append(out, "expiry job: not running")
	}
	return out
}

func (rd *readiness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	probs := rd.problems(r.Context())
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(probs) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "not ready", "reasons": probs})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "ready"})
}
