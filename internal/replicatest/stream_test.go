package replicatest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
)

// addHostVM loads one plain Linux host guarded by the agent (cloud: host,
// provider: nftables) and a JIT policy on its port 22, and returns its ID.
func (c *cluster) addHostVM(t testing.TB, name string) string {
	t.Helper()
	id := base + "/providers/Microsoft.Compute/virtualMachines/" + name
	inv := inventory.Inventory{VMs: []inventory.VM{{ID: id, Name: name, Cloud: inventory.Host, Provider: inventory.ProviderNftables,
		Location: "westeurope", Addresses: []netip.Addr{netip.MustParseAddr("198.18.200.10")}}}}
	if code, body, err := c.do("POST", c.replicas[0].URL+"/drawbridge/v1/inventory", inv); err != nil || code != 200 {
		t.Fatalf("inventory: %d %v %s", code, err, body)
	}
	policy := map[string]any{"properties": map[string]any{"virtualMachines": []any{map[string]any{"id": id, "ports": []any{
		map[string]any{"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"},
	}}}}}
	u := c.replicas[0].URL + base + "/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/" + name
	if code, body, err := c.do("PUT", u, policy); err != nil || code != 200 {
		t.Fatalf("policy: %d %v %s", code, err, body)
	}
	return id
}

// agentStream is an agent-like client of GET /drawbridge/v1/agent/stream:
// it records when each grant ID first appears in a snapshot.
type agentStream struct {
	mu      sync.Mutex
	seen    map[string]time.Time
	arrived chan struct{} // signalled after every snapshot
	errc    chan error
	cancel  context.CancelFunc
}

func (c *cluster) openStream(t testing.TB, r *replica, vm string) *agentStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", r.URL+"/drawbridge/v1/agent/stream?vm="+url.QueryEscape(vm), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// No client timeout: the stream is long-lived; ctx ends it.
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		cancel()
		t.Fatalf("agent stream: status %d", resp.StatusCode)
	}
	s := &agentStream{seen: map[string]time.Time{}, arrived: make(chan struct{}, 1), errc: make(chan error, 1), cancel: cancel}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			now := time.Now()
			var line struct {
				Type   string `json:"type"`
				Grants []struct {
					ID string `json:"id"`
				} `json:"grants"`
			}
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				s.errc <- fmt.Errorf("stream line %q: %v", sc.Text(), err)
				return
			}
			if line.Type != "snapshot" {
				continue
			}
			s.mu.Lock()
			for _, g := range line.Grants {
				if _, ok := s.seen[g.ID]; !ok {
					s.seen[g.ID] = now
				}
			}
			s.mu.Unlock()
			select {
			case s.arrived <- struct{}{}:
			default:
			}
		}
		s.errc <- fmt.Errorf("stream ended: %v", sc.Err())
	}()
	return s
}

// wait returns when grant id first arrived on the stream, or false after limit.
func (s *agentStream) wait(id string, limit time.Duration) (time.Time, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		at, ok := s.seen[id]
		s.mu.Unlock()
		if ok {
			return at, nil
		}
		select {
		case <-s.arrived:
		case err := <-s.errc:
			return time.Time{}, err
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("grant %s not on the stream after %v", id, limit)
		}
	}
}

// notifyLatencies makes n requests for vm's port 22 through replica from
// and returns, sorted, for each the time from its 202 answer to the
// snapshot with its grant arriving on stream (zero when the snapshot came
// first), and the time from sending the request to that snapshot.
func (c *cluster) notifyLatencies(t testing.TB, from *replica, vm string, stream *agentStream, n int, limit time.Duration) (lat, fromSend []time.Duration) {
	t.Helper()
	lat = make([]time.Duration, 0, n)
	for i := range n {
		sent := time.Now()
		ids, code, body, err := c.request(from, vm, []int{22}, "1h", fmt.Sprintf("198.18.%d.%d", 100+i/250, i%250+1))
		accepted := time.Now()
		if err != nil || code != 202 || len(ids) != 1 {
			t.Fatalf("request %d: %d %v %s %v", i, code, err, body, ids)
		}
		at, err := stream.wait(ids[0], limit)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		lat = append(lat, max(0, at.Sub(accepted)))
		fromSend = append(fromSend, at.Sub(sent))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	sort.Slice(fromSend, func(i, j int) bool { return fromSend[i] < fromSend[j] })
	return lat, fromSend
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// TestChangeReachesOtherReplicasStream: a grant made through replica 1
// reaches an agent stream connected to replica 2 (LISTEN/NOTIFY, then a
// reconcile of the VM on replica 2) within 2 s, 50 times in a row; the
// log shows p50/p99 (target: ≤ 50 ms).
func TestChangeReachesOtherReplicasStream(t *testing.T) {
	c := newCluster(t, 3, 1)
	vm := c.addHostVM(t, "host-stream")
	stream := c.openStream(t, c.replicas[1], vm)
	lat, sent := c.notifyLatencies(t, c.replicas[0], vm, stream, 50, 2*time.Second)
	t.Logf("replica 1 -> stream on replica 2, %d requests: after the 202 p50 %v, p99 %v, max %v; after sending the request p50 %v, p99 %v",
		len(lat), pct(lat, .50), pct(lat, .99), lat[len(lat)-1], pct(sent, .50), pct(sent, .99))
}

// BenchmarkAgentNotify: the time from a request's 202 on replica 1 to the
// snapshot with its grant on an agent stream on replica 2 (p50-ms, p99-ms;
// 0 when the snapshot arrived before the 202), and from sending the
// request (send-p50-ms, send-p99-ms).
//
//	go test -run '^$' -bench AgentNotify -benchtime 200x ./internal/replicatest/
func BenchmarkAgentNotify(b *testing.B) {
	c := newCluster(b, 3, 1)
	vm := c.addHostVM(b, "host-stream")
	stream := c.openStream(b, c.replicas[1], vm)
	b.ResetTimer()
	lat, sent := c.notifyLatencies(b, c.replicas[0], vm, stream, b.N, 2*time.Second)
	b.StopTimer()
	b.ReportMetric(float64(pct(lat, .50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(lat, .99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(pct(sent, .50).Microseconds())/1000, "send-p50-ms")
	b.ReportMetric(float64(pct(sent, .99).Microseconds())/1000, "send-p99-ms")
}
