package server_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/server"
	"github.com/drawbridge/drawbridge/internal/store/sqlite"
)

// TestAuditVerifyDetectsTampering builds an audit log through the API,
// stops the server, changes the SQLite file directly, and checks that
// verification names the first broken record.
func TestAuditVerifyDetectsTampering(t *testing.T) {
	cases := []struct {
		name   string
		sql    []string
		badSeq int64
		reason string
	}{
		{"edited", []string{`UPDATE audit_records SET body = CAST(replace(CAST(body AS TEXT), '"result":"succeeded"', '"result":"failed"') AS BLOB) WHERE seq = 3`},
			3, "edited"},
		{"deleted", []string{`DELETE FROM audit_records WHERE seq = 2`},
			2, "missing"},
		{"reordered", []string{
			`UPDATE audit_records SET seq = -1 WHERE seq = 2`,
			`UPDATE audit_records SET seq = 2 WHERE seq = 3`,
			`UPDATE audit_records SET seq = 3 WHERE seq = -1`},
			2, "reordered"},
		{"last deleted", []string{`DELETE FROM audit_records WHERE seq = (SELECT MAX(seq) FROM audit_records)`},
			0, "deleted from the end"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			db := filepath.Join(t.TempDir(), "drawbridge.db")
			srv, err := server.Start(ctx, server.Config{Listen: "127.0.0.1:0", DBPath: db, SampleInventory: true})
			if err != nil {
				t.Fatal(err)
			}
			e := &httpEnv{t: t, srv: srv, admin: srv.AdminToken}
			e.must(e.admin, "PUT", webPol, policyBody(webVM), 200)
			e.must(e.admin, "POST", "/drawbridge/v1/requests", map[string]any{"vm": webVM, "ports": []int{22}, "duration": "PT1H", "source": "198.18.9.9"}, 202)
			e.must(e.admin, "POST", "/drawbridge/v1/requests", map[string]any{"vm": webVM, "ports": []int{22}, "duration": "PT1H", "source": "198.18.9.9"}, 202)
			var rep auditstore.Report
			if err := jsonUnmarshal(e.must(e.admin, "GET", "/drawbridge/v1/audit/verify", nil, 200), &rep); err != nil || !rep.OK || rep.Records < 5 {
				t.Fatalf("before tampering: %+v %v", rep, err)
			}
			n := rep.Records
			if err := srv.Close(); err != nil {
				t.Fatal(err)
			}

			raw, err := sql.Open("sqlite", db)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range c.sql {
				res, err := raw.Exec(q)
				if err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				if k, _ := res.RowsAffected(); k != 1 {
					t.Fatalf("%s: %d rows changed, want 1", q, k)
				}
			}
			raw.Close()

			st, err := sqlite.Open(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			rep, err = access.New(st, nil).VerifyAudit(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := c.badSeq
			if want == 0 {
				want = int64(n) // the last record is missing
			}
			if rep.OK || rep.BadSeq != want || !strings.Contains(rep.Error, c.reason) {
				t.Fatalf("verify = %+v; want broken at seq %d mentioning %q", rep, want, c.reason)
			}
		})
	}
}
