package replicatest

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRacingRequests: requests for the same VM and port racing on two
// replicas end with exactly one active grant, the newer one; the other
// ended NewerRequestInitiated.
func TestRacingRequests(t *testing.T) {
	c := newCluster(t, 3, 4)
	const rounds = 25
	inversions := 0
	defer func() {
		t.Logf("%d of %d rounds: the surviving grant's start time is earlier than the superseded one's (clock read before the VM lock)", inversions, rounds)
	}()
	for round := range rounds {
		vm := c.vms[round%len(c.vms)]
		var wg sync.WaitGroup
		ids := make([][]string, 2)
		errs := make([]error, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var code int
				var body string
				ids[i], code, body, errs[i] = c.request(c.replicas[i], vm, []int{22}, "1h", fmt.Sprintf("198.18.%d.%d", round, i+1))
				if errs[i] == nil && code != 202 {
					errs[i] = fmt.Errorf("status %d: %s", code, body)
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		gs := c.grants(t)
		a, b := gs[ids[0][0]], gs[ids[1][0]]
		// The survivor is the one committed second (it ended the other).
		newer, older := a, b
		if b.Status == "Initiated" {
			newer, older = b, a
		}
		if newer.Status != "Initiated" || older.Status != "Revoked" || older.Reason != "NewerRequestInitiated" {
			t.Errorf("round %d: %s %s/%s and %s %s/%s; want one Initiated, the other Revoked/NewerRequestInitiated",
				round, newer.ID, newer.Status, newer.Reason, older.ID, older.Status, older.Reason)
		}
		if newer.Start.Before(older.Start) {
			// jit.Initiate reads the clock before waiting for the VM lock.
			inversions++
		}
		active := 0
		for _, g := range gs {
			if g.VMKey == newer.VMKey && g.Port == 22 && g.Status == "Initiated" {
				active++
			}
		}
		if active != 1 {
			t.Errorf("round %d: %d active grants on the VM's port 22, want 1", round, active)
		}
	}
}

// TestKillReplicaDuringStream: short grants are requested round-robin over
// three replicas while they expire; one replica is killed with SIGKILL in
// the middle. Afterwards every accepted request's grants exist, no grant is
// active past its end, and every grant was ended at most once (once, for
// those past their end).
func TestKillReplicaDuringStream(t *testing.T) {
	c := newCluster(t, 3, 64)
	const (
		streamFor = 4 * time.Second
		duration  = "1500ms"
		workers   = 6
	)
	var accepted sync.Map // grant ID -> replica
	var nAccepted, nRefused atomic.Int64
	var killed atomic.Bool
	deadline := time.Now().Add(streamFor)
	var wg sync.WaitGroup
	var seq atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline) && i < 5000; i++ {
				n := seq.Add(1)
				r := int(n) % len(c.replicas)
				if r == 1 && killed.Load() {
					r = 0
				}
				vm := c.vms[int(n)%len(c.vms)]
				ports := []int{22}
				if n%3 == 0 {
					ports = []int{22, 3389}
				}
				ids, code, _, err := c.request(c.replicas[r], vm, ports, duration, fmt.Sprintf("198.18.%d.%d", w, n%250+1))
				if err != nil || code != 202 {
					// Requests to the replica as it dies may fail; they were not accepted.
					nRefused.Add(1)
					continue
				}
				nAccepted.Add(1)
				for _, id := range ids {
					accepted.Store(id, r)
				}
			}
		}()
	}
	time.Sleep(streamFor / 2)
	c.replicas[1].Kill9()
	killed.Store(true)
	t.Logf("killed replica 2 at %v", time.Now().Format("15:04:05.000"))
	wg.Wait()
	// Every grant ends at most 1.5 s after the stream; give the survivors
	// that plus slack to expire what the dead replica accepted.
	time.Sleep(1500*time.Millisecond + 2*time.Second)
	now := time.Now()
	gs := c.grants(t)
	lost := 0
	accepted.Range(func(k, _ any) bool {
		if _, ok := gs[k.(string)]; !ok {
			lost++
		}
		return true
	})
	if lost > 0 {
		t.Errorf("%d accepted grants are not in the database", lost)
	}
	var lateness []time.Duration
	expired := 0
	for _, g := range gs {
		if g.Status == "Initiated" && g.End.Before(now.Add(-time.Second)) {
			t.Errorf("grant %s still active %v after its end", g.ID, now.Sub(g.End))
		}
		if g.Reason == "Expired" {
			expired++
			lateness = append(lateness, g.EndedAt.Sub(g.End))
		}
	}
	endings, bad := c.endings(t)
	for _, b := range bad {
		t.Errorf("grant ended twice: %s", b)
	}
	for id, n := range endings {
		if n != 1 {
			t.Errorf("grant %s changed from Initiated %d times", id, n)
		}
	}
	for id, g := range gs {
		if g.Status != "Initiated" && endings[id] != 1 {
			t.Errorf("grant %s is %s but its ending was recorded %d times", id, g.Status, endings[id])
		}
	}
	sort.Slice(lateness, func(i, j int) bool { return lateness[i] < lateness[j] })
	if len(lateness) > 0 {
		t.Logf("%d accepted requests (%d refused or failed), %d grants, %d expired; expiry lateness p50 %v, max %v",
			nAccepted.Load(), nRefused.Load(), len(gs), expired, lateness[len(lateness)/2], lateness[len(lateness)-1])
		if max := lateness[len(lateness)-1]; max > 3*time.Second {
			t.Errorf("a grant expired %v after its end", max)
		}
	}
	if expired == 0 || nAccepted.Load() == 0 {
		t.Errorf("nothing expired or nothing accepted: the test did not test anything")
	}
}

// TestLoad: 10,000 requests spread over three replicas with 32 concurrent
// clients: none lost, none duplicated, at most one active grant per VM
// and port.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 requests: skipped with -short")
	}
	c := newCluster(t, 3, 64)
	const total, clients = 10000, 32
	start := time.Now()
	var next atomic.Int64
	var mu sync.Mutex
	accepted := map[string]bool{}
	dup := 0
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 5*time.Minute {
				n := next.Add(1)
				if n > total {
					return
				}
				vm := c.vms[int(n)%len(c.vms)]
				ids, code, body, err := c.request(c.replicas[int(n)%3], vm, []int{22}, "1h", fmt.Sprintf("198.18.%d.%d", (n/250)%250, n%250+1))
				if err != nil || code != 202 {
					if failures.Add(1) <= 5 {
						t.Errorf("request %d: %d %v %s", n, code, err, body)
					}
					continue
				}
				mu.Lock()
				for _, id := range ids {
					if accepted[id] {
						dup++
					}
					accepted[id] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	gs := c.grants(t)
	missing := 0
	for id := range accepted {
		if _, ok := gs[id]; !ok {
			missing++
		}
	}
	active := map[string]int{}
	for _, g := range gs {
		if g.Status == "Initiated" {
			active[fmt.Sprintf("%s:%d", g.VMKey, g.Port)]++
		}
	}
	for k, n := range active {
		if n > 1 {
			t.Errorf("%s has %d active grants", k, n)
		}
	}
	if len(accepted) != total || missing != 0 || dup != 0 || failures.Load() != 0 {
		t.Errorf("%d accepted of %d, %d missing from the database, %d duplicated IDs, %d failed", len(accepted), total, missing, dup, failures.Load())
	}
	if len(gs) != len(accepted) {
		t.Errorf("%d grants in the database, %d accepted", len(gs), len(accepted))
	}
	t.Logf("%d requests over 3 replicas in %v: %.0f requests/s", total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
}
