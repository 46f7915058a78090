package replicatest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drawbridge/drawbridge/internal/pgtest"
)

// startServers starts n `drawbridge server` processes on db (a SQLite path
// or a PostgreSQL DSN), reads the bootstrap token from tokenFile (relative
// to the servers' directory) and loads nVMs VMs with policies; no trigger,
// no pool.
func startServers(b *testing.B, db, tokenFile string, n, nVMs int) *cluster {
	b.Helper()
	c := &cluster{dir: b.TempDir(), dsn: db}
	c.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	c.replicas = append(c.replicas, startReplica(b, db, c.dir, 1))
	if !filepath.IsAbs(tokenFile) {
		tokenFile = filepath.Join(c.dir, tokenFile)
	}
	if tok, err := os.ReadFile(tokenFile); err == nil {
		c.token = strings.TrimSpace(string(tok))
	}
	for i := 2; i <= n; i++ {
		c.replicas = append(c.replicas, startReplica(b, db, c.dir, i))
	}
	c.vms = c.addVMs(b, nVMs)
	return c
}

// benchClients is how many requests are in flight at once.
const benchClients = 32

// BenchmarkReplicas: the same request mix (POST /drawbridge/v1/requests for
// port 22 over 32 VMs, round-robin over the servers, 32 in flight) on
// SQLite with one server, and on PostgreSQL with one and with three
// replicas. Reports requests/s, p50 and p99 latency, and for PostgreSQL
// the transactions rolled back per request (pg_stat_database.xact_rollback:
// serialisation failures retried by the store, mostly).
//
//	go test -run '^$' -bench Replicas -benchtime 2000x ./internal/replicatest/
func BenchmarkReplicas(b *testing.B) {
	for _, bc := range []struct {
		name     string
		postgres bool
		n        int
	}{{"sqlite-1", false, 1}, {"postgres-1", true, 1}, {"postgres-3", true, 3}} {
		b.Run(bc.name, func(b *testing.B) {
			var c *cluster
			var rollbacks func() int64
			if bc.postgres {
				dsn := pgtest.NewDatabase(b)
				c = startServers(b, dsn, "drawbridge.admin-token", bc.n, 32)
				conn, err := pgx.Connect(context.Background(), dsn)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { conn.Close(context.Background()) })
				rollbacks = func() int64 {
					// Statistics are flushed at transaction end; ask for a fresh view.
					conn.Exec(context.Background(), `SELECT pg_stat_clear_snapshot()`)
					var n int64
					if err := conn.QueryRow(context.Background(), `SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
						b.Fatal(err)
					}
					return n
				}
			} else {
				db := filepath.Join(b.TempDir(), "bench.db")
				c = startServers(b, db, db+".admin-token", 1, 32)
			}
			var rb0 int64
			if rollbacks != nil {
				rb0 = rollbacks()
			}
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			var failed atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range min(benchClients, b.N) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for time.Since(start) < 10*time.Minute {
						i := int(next.Add(1)) - 1
						if i >= b.N {
							return
						}
						vm := c.vms[i%len(c.vms)]
						t0 := time.Now()
						_, code, body, err := c.request(c.replicas[i%len(c.replicas)], vm, []int{22}, "1h", fmt.Sprintf("198.18.%d.%d", (i/250)%250, i%250+1))
						lat[i] = time.Since(t0)
						if err != nil || code != 202 {
							if failed.Add(1) <= 3 {
								b.Errorf("request %d: %d %v %s", i, code, err, body)
							}
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
			b.ReportMetric(float64(pct(lat, .50).Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(pct(lat, .99).Microseconds())/1000, "p99-ms")
			if rollbacks != nil {
				// Let the servers' statistics reach the collector.
				time.Sleep(1500 * time.Millisecond)
				b.ReportMetric(float64(rollbacks()-rb0)/float64(b.N), "rollbacks/req")
			}
			if f := failed.Load(); f > 0 {
				b.Errorf("%d of %d requests failed", f, b.N)
			}
		})
	}
}
