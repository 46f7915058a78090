package jit_test

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
	"github.com/drawbridge/drawbridge/internal/store/sqlite"
	"github.com/drawbridge/drawbridge/internal/store/storetest"
)

// rerunOutcome is what a scenario leaves behind, without the IDs (a run
// that runs its transactions twice draws more of them).
type rerunOutcome struct {
	Audit    []string // operation, target and result of each audit record
	Grants   []string // port, status and reason of each grant of vm1, newest first
	Requests []int    // grants per request of the policy, newest first
	Desired  int      // grants in vm1's last desired state
	Applies  int
}

// A service whose store runs every transaction twice (the first run rolled
// back) ends in the same state, audit log and provider calls as one whose
// store runs each once: no transaction function carries anything from one
// run into the next.
func TestTransactionsAreSafeToRunTwice(t *testing.T) {
	scenario := func(f *fixture) rerunOutcome {
		t.Helper()
		ctx := context.Background()
		p := f.put(t, policyFor(vm1, ssh("*")))
		if _, err := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 22, "198.18.0.7", time.Hour)); err != nil {
			t.Fatal(err)
		}
		r2, err := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 22, "198.18.0.8", time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Revoke(ctx, alice, r2.Grants[0].ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 22, "198.18.0.9", 10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(11 * time.Minute)
		if n, err := f.svc.ExpireDue(ctx); err != nil || n != 1 {
			t.Fatalf("ExpireDue = %d, %v", n, err)
		}
		if err := f.svc.ReconcileVM(ctx, vm1); err != nil {
			t.Fatal(err)
		}
		// A refused request changes nothing, whichever run refuses it.
		if _, err := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 3389, "198.18.0.9", time.Hour)); !errors.Is(err, jit.ErrInvalid) {
			t.Fatalf("request for a port not in the policy: %v", err)
		}
		if _, err := f.svc.Initiate(ctx, alice, p.ID, request(vm1, 22, "198.18.0.10", time.Hour)); err != nil {
			t.Fatal(err)
		}
		// Updating the policy supersedes nothing but rewrites it.
		p2 := policyFor(vm1, ssh("*"), jit.PortPolicy{Number: 3389, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT1H"})
		f.put(t, p2)

		var out rerunOutcome
		gs, err := f.svc.ListGrants(ctx, jit.GrantFilter{VMID: vm1})
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			out.Grants = append(out.Grants, fmtGrant(g))
		}
		rs, err := f.svc.ListRequests(ctx, p.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			out.Requests = append(out.Requests, len(r.Grants))
		}
		if err := f.svc.DeletePolicy(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		out.Desired = len(f.prov.last(vm1).Grants)
		out.Applies = f.prov.applies
		err = f.store.ObjectReadTx(ctx, func(o storeObjects) error {
			recs, err := auditstore.List(ctx, o, auditstore.Filter{})
			if err != nil {
				return err
			}
			for _, r := range recs {
				out.Audit = append(out.Audit, r.Operation+" "+r.Target+" "+r.Result)
			}
			rep, err := auditstore.Verify(ctx, o)
			if err != nil || !rep.OK || rep.Records != len(recs) {
				t.Errorf("audit log: %+v, %v", rep, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	once := scenario(newFixture(t))
	if len(once.Audit) == 0 || len(once.Grants) != 4 {
		t.Errorf("scenario left %d audit records and grants %v", len(once.Audit), once.Grants)
	}
	// SQLite is where reruns really happen (a failed member of a group
	// commit makes the others run again).
	backends := map[string]func() storetest.Store{
		"memstore": func() storetest.Store { return memstore.New() },
		"sqlite":   func() storetest.Store { return openSQLite(t) },
	}
	for name, open := range backends {
		if name != "memstore" {
			if got := scenario(newFixtureOn(t, open(), nil)); !reflect.DeepEqual(once, got) {
				t.Errorf("%s: outcome differs from memstore's:\nmemstore %+v\n%s %+v", name, once, name, got)
			}
		}
		var rr *storetest.Rerun
		twice := scenario(newFixtureOn(t, open(), func(st storetest.Store) jit.Store { rr = storetest.NewRerun(st); return rr }))
		if rr.Reruns() == 0 {
			t.Fatalf("%s: the rerun store ran no transaction twice", name)
		}
		if !reflect.DeepEqual(once, twice) {
			t.Errorf("%s: running each transaction twice changed the outcome:\nonce  %+v\ntwice %+v", name, once, twice)
		}
	}
}

func openSQLite(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "jit.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func fmtGrant(g jit.Grant) string {
	return string(g.Status) + "/" + string(g.StatusReason) + "/" + g.Source.String()
}
