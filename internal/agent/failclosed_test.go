package agent

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/clock"
	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
	"github.com/drawbridge/drawbridge/internal/provider/nftables"
)

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// deadServer is a URL nothing listens on.
func deadServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}

func fileWith(t *testing.T, grantEnd time.Time) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.json")
	err := saveState(path, StateFile{Snapshot: agenthub.Snapshot{Type: "snapshot", VM: "vm1", Version: 7,
		Guarded: []agenthub.SnapshotPort{{Port: 22, Protocol: "Tcp"}},
		Grants: []agenthub.SnapshotGrant{
			{ID: "live", Port: 22, Protocol: "Tcp", Source: "198.18.1.2/32", End: grantEnd},
			{ID: "ended", Port: 22, Protocol: "Tcp", Source: "198.18.1.3/32", End: time.Now().Add(-time.Minute)},
		}}})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func run(t *testing.T, cfg Config) *Agent {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

func grantsOf(fw nftables.Firewall) []string {
	st, _ := fw.Observe(context.Background())
	var out []string
	for _, g := range st.Grants {
		out = append(out, g.Source.String())
	}
	return out
}

// TestBootGuardsFromStateFileServerDown: with the server down, the state
// file's guard is in the firewall at once and its unexpired grant (only
// that one) reopens.
func TestBootGuardsFromStateFileServerDown(t *testing.T) {
	fw := &recorder{Fake: nftables.NewFake(clock.Real{})}
	path := fileWith(t, time.Now().Add(time.Hour))
	a := run(t, Config{Server: deadServer(t), VM: "vm1", Firewall: fw, StateFile: path})
	waitUntil(t, "guard and the live grant", 2*time.Second, func() bool {
		st, _ := fw.Observe(context.Background())
		return len(st.Guarded) == 1 && len(st.Grants) == 1 && st.Grants[0].Source.String() == "198.18.1.2/32"
	})
	fw.mu.Lock()
	first := fw.states[0]
	fw.mu.Unlock()
	if len(first.Guarded) != 1 || len(first.Grants) != 0 {
		t.Fatalf("first Apply %+v: want the guard alone (grants only once the server is found away)", first)
	}
	if s := a.Status(); s.Connected {
		t.Fatalf("status %+v: connected to a dead server", s)
	}
}

// TestStaleStateFileServerUp: when the server answers, the state file's
// grants are never applied (the server revoked them).
func TestStaleStateFileServerUp(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/drawbridge/v1/agent/stream", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(agenthub.Snapshot{Type: "snapshot", VM: "vm1", Version: 9,
			Guarded: []agenthub.SnapshotPort{{Port: 22, Protocol: "Tcp"}}, Grants: []agenthub.SnapshotGrant{}})
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("/drawbridge/v1/agent/report", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer srv.CloseClientConnections()
	fw := &recorder{Fake: nftables.NewFake(clock.Real{})}
	path := fileWith(t, time.Now().Add(time.Hour))
	a := run(t, Config{Server: srv.URL, VM: "vm1", Firewall: fw, StateFile: path, OfflineGrace: 100 * time.Millisecond})
	waitUntil(t, "server snapshot applied", 2*time.Second, func() bool { return a.Status().Version == 9 })
	time.Sleep(300 * time.Millisecond) // past the offline grace
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for i, st := range fw.states {
		if len(st.Grants) != 0 {
			t.Fatalf("Apply %d opened %+v from the stale state file", i, st.Grants)
		}
	}
	sf, err := LoadState(path)
	if err != nil || sf.Snapshot.Version != 9 || len(sf.Snapshot.Grants) != 0 {
		t.Fatalf("state file after the server's snapshot: %+v, %v", sf, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, %v; want 0600", fi.Mode(), err)
	}
}

// TestGuardPortsWithoutStateFile: no state file and no server, but
// GuardPorts: the ports are denied anyway.
func TestGuardPortsWithoutStateFile(t *testing.T) {
	fw := nftables.NewFake(clock.Real{})
	run(t, Config{Server: deadServer(t), VM: "vm1", Firewall: fw, StateFile: filepath.Join(t.TempDir(), "none.json"),
		GuardPorts: []agenthub.SnapshotPort{{Port: 22, Protocol: "*"}, {Port: 3389, Protocol: "*"}}})
	waitUntil(t, "guard", time.Second, func() bool {
		st, _ := fw.Observe(context.Background())
		return len(st.Guarded) == 4 // 22 and 3389, TCP and UDP
	})
}

// TestDriftRepairedAndReported: a change reported by Watch makes the agent
// re-apply its target and report the drift to the server.
func TestDriftRepairedAndReported(t *testing.T) {
	end := time.Now().Add(time.Hour).UTC()
	reports := make(chan agenthub.Report, 8)
	mux := http.NewServeMux()
	mux.HandleFunc("/drawbridge/v1/agent/stream", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(agenthub.Snapshot{Type: "snapshot", VM: "vm1", Version: 3,
			Guarded: []agenthub.SnapshotPort{{Port: 22, Protocol: "Tcp"}},
			Grants:  []agenthub.SnapshotGrant{{ID: "g", Port: 22, Protocol: "Tcp", Source: "198.18.1.2/32", End: end}}})
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("/drawbridge/v1/agent/report", func(w http.ResponseWriter, r *http.Request) {
		var rep agenthub.Report
		_ = json.NewDecoder(r.Body).Decode(&rep)
		reports <- rep
		w.WriteHeader(204)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer srv.CloseClientConnections()
	fw := nftables.NewFake(clock.Real{})
	changes := make(chan func(nftables.Change), 1)
	watch := func(ctx context.Context, ready chan<- struct{}, fn func(nftables.Change)) error {
		close(ready)
		changes <- fn
		<-ctx.Done()
		return nil
	}
	a := run(t, Config{Server: srv.URL, VM: "vm1", Firewall: fw, Watch: watch})
	notify := <-changes
	waitUntil(t, "snapshot applied", 2*time.Second, func() bool { return len(grantsOf(fw)) == 1 })
	if err := fw.Disable(context.Background()); err != nil { // someone deletes the table
		t.Fatal(err)
	}
	notify(nftables.Change{PID: 42, Comm: "nft", Events: map[string]int{"delete table": 1}})
	waitUntil(t, "repaired", time.Second, func() bool { return len(grantsOf(fw)) == 1 && fw.Enabled() })
	deadline := time.After(2 * time.Second)
	for {
		select {
		case rep := <-reports:
			if rep.Drift == nil {
				continue
			}
			if rep.Version != 3 || len(rep.Enforced) != 1 || rep.Drift.Found == "" || rep.Drift.Restored == "" {
				t.Fatalf("drift report %+v (%+v)", rep, *rep.Drift)
			}
			if s := a.Status(); s.Drifts != 1 || s.LastDrift == nil {
				t.Fatalf("status %+v: want one drift", s)
			}
			return
		case <-deadline:
			t.Fatal("no drift report")
		}
	}
}

func TestBackoffCapped(t *testing.T) {
	a, err := New(Config{Server: "http://x", VM: "v", Firewall: nftables.NewFake(clock.Real{})})
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 50; n++ {
		if d := a.backoff(n); d > 3*time.Second || d <= 0 {
			t.Fatalf("backoff(%d) = %v; want within (0, 3s]", n, d)
		}
	}
}

// TestReconnectsWhenServerReturns: with long backoffs, the agent still
// reconnects within a fraction of a second of the server accepting
// connections again (it probes the address while it waits).
func TestReconnectsWhenServerReturns(t *testing.T) {
	u := deadServer(t)
	fw := nftables.NewFake(clock.Real{})
	a := run(t, Config{Server: u, VM: "vm1", Firewall: fw, MinBackoff: 20 * time.Second, MaxBackoff: 20 * time.Second})
	time.Sleep(300 * time.Millisecond) // first attempt refused; waiting 10-20s
	l, err := net.Listen("tcp", u[len("http://"):])
	if err != nil {
		t.Skipf("skipping: the port was taken meanwhile: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/drawbridge/v1/agent/stream" {
			w.WriteHeader(204)
			return
		}
		_ = json.NewEncoder(w).Encode(agenthub.Snapshot{Type: "snapshot", VM: "vm1", Version: 5,
			Guarded: []agenthub.SnapshotPort{{Port: 22, Protocol: "Tcp"}}})
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	srv.Listener = l
	srv.Start()
	defer srv.Close()
	defer srv.CloseClientConnections()
	began := time.Now()
	waitUntil(t, "reconnected", 2*time.Second, func() bool { return a.Status().Version == 5 })
	t.Logf("reconnected %v after the server returned", time.Since(began))
}
