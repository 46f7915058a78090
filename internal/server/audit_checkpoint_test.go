package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditkey"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/server"
	"github.com/drawbridge/drawbridge/internal/store/sqlite"
)

// rewrite changes the stored log as someone with write access to the
// database but not the checkpoint key would: recs is the whole log, and
// what comes back is stored with every hash recomputed and the head fixed,
// so the hash chain alone still verifies.
type rewrite func(recs []audit.Record) []audit.Record

// TestCheckpointsDetectARewrittenChain: the hash chain alone accepts a
// log whose last record was deleted (head fixed) or whose record k was
// edited (later hashes recomputed); verifying against the signed
// checkpoints with the public key does not, and the server will not sign
// the rewritten head.
func TestCheckpointsDetectARewrittenChain(t *testing.T) {
	cases := []struct {
		name   string
		change rewrite
		reason string
	}{
		{"last deleted, head fixed", func(recs []audit.Record) []audit.Record { return recs[:len(recs)-1] }, "deleted from the end"},
		{"record 3 edited, later hashes recomputed", func(recs []audit.Record) []audit.Record {
			recs[2].Detail = "nothing to see here"
			return recs
		}, "rewritten"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			db := filepath.Join(t.TempDir(), "drawbridge.db")
			cfg := server.Config{Listen: "127.0.0.1:0", DBPath: db, SampleInventory: true, CheckpointEvery: 2, CheckpointInterval: time.Hour}
			srv, err := server.Start(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if srv.AuditKeyFile != db+".audit-key" {
				t.Errorf("audit key at %s, want beside the database", srv.AuditKeyFile)
			}
			if st, err := os.Stat(srv.AuditKeyFile); err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("audit key file: %v %v, want mode 0600", st, err)
			}
			admin := srv.AdminToken
			e := &httpEnv{t: t, srv: srv, admin: admin}
			e.must(admin, "PUT", webPol, policyBody(webVM), 200)
			// The timer signs a checkpoint within a second or so (more
			// than CheckpointEvery records since none); Close signs another.
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if st, _, _ := e.call(admin, "GET", "/drawbridge/v1/audit/checkpoints/latest", nil); st == 200 {
					break
				} else if time.Now().After(deadline) {
					t.Fatalf("no checkpoint signed within 30s: %d", st)
				}
			}
			for range 3 {
				e.must(admin, "POST", "/drawbridge/v1/requests", map[string]any{"vm": webVM, "ports": []int{22}, "duration": "PT1H", "source": "198.18.9.9"}, 202)
			}
			if err := srv.Close(); err != nil { // signs the final head
				t.Fatal(err)
			}
			pub, err := auditkey.ReadPublic(db + ".audit-key.pub")
			if err != nil {
				t.Fatal(err)
			}
			verifyWithKey := func() (auditstore.Report, int) {
				t.Helper()
				srv, err := server.Start(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer srv.Close()
				cl, err := client.New(srv.URL, admin)
				if err != nil {
					t.Fatal(err)
				}
				// The server checks its checkpoints; the client checks
				// the log itself against them, trusting only the key.
				rep, err := cl.VerifyAudit(ctx)
				if err != nil {
					t.Fatal(err)
				}
				client := auditstore.Report{OK: true}
				if err := cl.VerifyCheckpoints(ctx, pub, &client); err != nil {
					t.Fatal(err)
				}
				if rep.OK != client.OK || rep.OK && rep.Checkpoints != client.Checkpoints {
					t.Errorf("server says %+v, client says %+v", rep, client)
				}
				cps, err := cl.AuditCheckpoints(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return rep, len(cps)
			}
			rep, n := verifyWithKey()
			if !rep.OK || rep.Checkpoints != n || n < 2 || rep.LatestCheckpoint != int64(rep.Records) {
				t.Fatalf("before tampering: %+v, %d checkpoints; want all matched, the last at the head", rep, n)
			}

			tamper(t, db, c.change)
			st, err := sqlite.Open(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			chainOnly, err := access.New(st, nil).VerifyAudit(ctx)
			st.Close()
			if err != nil || !chainOnly.OK {
				t.Fatalf("the rewrite should pass the hash chain alone: %+v %v", chainOnly, err)
			}
			rep, after := verifyWithKey() // the server's verdict; the client's agrees
			if rep.OK || !strings.Contains(rep.Error, c.reason) {
				t.Fatalf("with the public key: %+v; want broken, mentioning %q", rep, c.reason)
			}
			// The restarted server saw the rewrite and signed nothing
			// for it (not even at Close, checked by a third start).
			if _, again := verifyWithKey(); after != n || again != n {
				t.Errorf("checkpoints %d, then %d and %d after the rewrite; want no new ones", n, after, again)
			}
		})
	}
}

// tamper rewrites the SQLite file's audit log with change, recomputing
// every hash and the head.
func tamper(t *testing.T, db string, change rewrite) {
	t.Helper()
	raw, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rows, err := raw.Query(`SELECT body FROM audit_records ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	for rows.Next() {
		var body []byte
		var r audit.Record
		if err := rows.Scan(&body); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	rows.Close()
	recs = change(recs)
	if _, err := raw.Exec(`DELETE FROM audit_records`); err != nil {
		t.Fatal(err)
	}
	prev := audit.Record{}
	for _, r := range recs {
		r = audit.Chain(prev, r)
		body, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.Exec(`INSERT INTO audit_records (seq, body) VALUES (?, ?)`, r.Seq, body); err != nil {
			t.Fatal(err)
		}
		prev = r
	}
	if _, err := raw.Exec(`UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, prev.Seq, prev.Hash); err != nil {
		t.Fatal(err)
	}
}
