package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/clock"
	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
	"github.com/drawbridge/drawbridge/internal/provider/nftables"
)

// recorder counts the Applies reaching the firewall.
type recorder struct {
	*nftables.Fake
	mu     sync.Mutex
	states []nftables.State
}

func (r *recorder) Apply(ctx context.Context, st nftables.State) error {
	r.mu.Lock()
	r.states = append(r.states, st)
	r.mu.Unlock()
	return r.Fake.Apply(ctx, st)
}

// TestSupersedeIsOneTransaction: a snapshot that replaces one grant by
// another reaches the firewall as exactly one Apply of the exact state (the
// old grant is gone in the same transaction the new one arrives), applied
// on receipt, and is reported with the new grant enforced.
func TestSupersedeIsOneTransaction(t *testing.T) {
	end := time.Now().Add(time.Hour).UTC()
	snap := func(v uint64, id, src string) agenthub.Snapshot {
		return agenthub.Snapshot{Type: "snapshot", VM: "vm1", Version: v,
			Guarded: []agenthub.SnapshotPort{{Port: 22, Protocol: "Tcp"}},
			Grants:  []agenthub.SnapshotGrant{{ID: id, Port: 22, Protocol: "Tcp", Source: src, End: end}}}
	}
	next := make(chan agenthub.Snapshot, 2)
	next <- snap(1, "old", "198.18.1.2/32")
	reports := make(chan agenthub.Report, 4)
	mux := http.NewServeMux()
	mux.HandleFunc("/drawbridge/v1/agent/stream", func(w http.ResponseWriter, r *http.Request) {
		enc := json.NewEncoder(w)
		for {
			select {
			case <-r.Context().Done():
				return
			case s := <-next:
				_ = enc.Encode(s)
				w.(http.Flusher).Flush()
			}
		}
	})
	mux.HandleFunc("/drawbridge/v1/agent/report", func(w http.ResponseWriter, r *http.Request) {
		var rep agenthub.Report
		_ = json.NewDecoder(r.Body).Decode(&rep)
		reports <- rep
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	fw := &recorder{Fake: nftables.NewFake(clock.Real{})}
	a, err := New(Config{Server: srv.URL, VM: "vm1", Firewall: fw})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	defer func() { cancel(); srv.CloseClientConnections(); <-done }()

	wait := func(v uint64, id string) {
		t.Helper()
		select {
		case rep := <-reports:
			if rep.Version != v || len(rep.Enforced) != 1 || rep.Enforced[0] != id || rep.Error != "" {
				t.Fatalf("report %+v; want version %d enforcing %s", rep, v, id)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no report for version %d", v)
		}
	}
	wait(1, "old")
	next <- snap(2, "new", "198.18.1.3/32")
	wait(2, "new")
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if len(fw.states) != 2 {
		t.Fatalf("%d Applies for 2 snapshots; want 2", len(fw.states))
	}
	if g := fw.states[1].Grants; len(g) != 1 || g[0].ID != "new" {
		t.Fatalf("second Apply has grants %+v; want only the new one", g)
	}
	obs, err := fw.Observe(context.Background())
	if err != nil || len(obs.Grants) != 1 {
		t.Fatalf("firewall holds %+v, %v; want the new grant only", obs.Grants, err)
	}
}
