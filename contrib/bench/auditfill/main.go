// Command auditfill appends N synthetic audit records to a drawbridge
// SQLite database (created if missing), for the export-memory benchmark in
// BENCHMARKS.md:
//
//	go run ./contrib/bench/auditfill -db /tmp/big.db -n 1000000
//
// Records look like a busy server's: a request with its grant as the after
// state, about 600 bytes each as stored, appended 10000 to a transaction
// through the same code the server uses (auditstore.AppendAll).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/sqlite"
)

func main() {
	db := flag.String("db", "", "SQLite database file")
	n := flag.Int("n", 1000000, "records to append")
	flag.Parse()
	if *db == "" {
		log.Fatal("-db is required")
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, *db)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	t0 := time.Now().Add(-time.Duration(*n) * time.Second)
	const batch = 10000
	for done := 0; done < *n; done += batch {
		recs := make([]audit.Record, 0, batch)
		for i := done; i < min(done+batch, *n); i++ {
			vm := fmt.Sprintf("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-%d/providers/Microsoft.Compute/virtualMachines/vm-%d", i%50, i%997)
			after := map[string]any{"id": fmt.Sprintf("req-%d", i), "vm": vm, "port": 22, "source": "198.18.0.7", "endTimeUtc": t0.Add(time.Duration(i)*time.Second + time.Hour), "status": "Initiated"}
			rec, err := audit.NewSucceeded(t0.Add(time.Duration(i)*time.Second), fmt.Sprintf("user-%d@example.com", i%200), "198.18.0.7", "initiate", vm, fmt.Sprintf("request req-%d: deploy hotfix", i), nil, after)
			if err != nil {
				log.Fatal(err)
			}
			recs = append(recs, rec)
		}
		if err := st.ObjectTx(ctx, func(o store.Objects) error {
			_, err := auditstore.AppendAll(ctx, o, recs)
			return err
		}); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("appended %d records to %s\n", *n, *db)
}
