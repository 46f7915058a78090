package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/jsonmemo"
	"github.com/drawbridge/drawbridge/internal/store"
)

func getInt(t *testing.T, s *Store, kind, key string) (int, error) {
	t.Helper()
	var v int
	err := s.InTx(context.Background(), func(tx jit.Tx) error { return tx.GetObject(context.Background(), kind, key, &v) })
	return v, err
}

// The writer's row cache never shows what a rolled-back transaction wrote.
func TestCacheForgetsRolledBackWrites(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	if err := s.InTx(ctx, func(tx jit.Tx) error { return tx.PutObject(ctx, "k", "a", 1) }); err != nil {
		t.Fatal(err)
	}
	if v, err := getInt(t, s, "k", "a"); err != nil || v != 1 {
		t.Fatalf("a = %d, %v", v, err)
	}
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx jit.Tx) error {
		if err := tx.PutObject(ctx, "k", "a", 2); err != nil {
			return err
		}
		if err := tx.PutObject(ctx, "k", "new", 3); err != nil {
			return err
		}
		if err := tx.DeleteObject(ctx, "k", "a"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}
	if v, err := getInt(t, s, "k", "a"); err != nil || v != 1 {
		t.Fatalf("after rollback a = %d, %v; want 1", v, err)
	}
	if _, err := getInt(t, s, "k", "new"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after rollback new: %v, want not found", err)
	}
}

// Another process committing to the same file is seen at once, even for
// rows the writer has cached.
func TestCacheSeesOtherConnectionsCommits(t *testing.T) {
	ctx := context.Background()
	s, path := openTempPath(t)
	if err := s.InTx(ctx, func(tx jit.Tx) error { return tx.PutObject(ctx, "k", "a", 1) }); err != nil {
		t.Fatal(err)
	}
	if v, err := getInt(t, s, "k", "a"); err != nil || v != 1 {
		t.Fatalf("a = %d, %v", v, err)
	}
	other, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec(`UPDATE objects SET body = '7' WHERE kind = 'k' AND key = 'a'`); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(`INSERT INTO objects (kind, key, body) VALUES ('k', 'b', '8')`); err != nil {
		t.Fatal(err)
	}
	if v, err := getInt(t, s, "k", "a"); err != nil || v != 7 {
		t.Fatalf("after another connection's update a = %d, %v; want 7", v, err)
	}
	if v, err := getInt(t, s, "k", "b"); err != nil || v != 8 {
		t.Fatalf("b = %d, %v; want 8", v, err)
	}
}

// openTempPath is openTemp that also returns the database file's path.
func openTempPath(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "drawbridge.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

// The writer remembers (jsonmemo.Remember) the grants it stores, and reads
// of those bytes then get the value it encoded rather than a decoding: that is exact only if every grant the
// writer stores decodes back to itself. Check it over the shapes a grant
// takes (sources of each kind, zero and non-UTC times, every status).
func TestGrantMemoRoundTrip(t *testing.T) {
	paris := time.FixedZone("CET", 3600)
	start := time.Date(2026, 11, 25, 12, 0, 0, 123456789, paris)
	var sources []jit.Source
	for _, s := range []string{"*", "198.18.0.1", "198.18.0.0/15", "2001:2::1", "2001:2::/48"} {
		src, err := jit.ParseSource(s)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, src)
	}
	sources = append(sources, jit.Source{})
	memo := jsonmemo.New()
	for i, src := range sources {
		for _, status := range []jit.Status{jit.StatusInitiated, jit.StatusRevoked, jit.StatusPending} {
			g := jit.Grant{ID: fmt.Sprintf("g%d", i), RequestID: "r", PolicyID: "/subscriptions/s/p", VMID: "/subscriptions/s/vm", Port: 22, Protocol: "TCP",
				Source: src, StartTime: start, EndTime: start.Add(time.Hour), Status: status, StatusReason: jit.ReasonUserRequested}
			if status == jit.StatusRevoked {
				g.EndedAt, g.Applied, g.AppliedAt, g.ProviderError = time.Now(), true, start.Add(time.Second), "boom"
			}
			g = g.InUTC()
			body, err := json.Marshal(g) // as InsertRequest and UpdateGrant store it
			if err != nil {
				t.Fatal(err)
			}
			var decoded jit.Grant
			if err := json.Unmarshal(body, &decoded); err != nil {
				t.Fatal(err)
			}
			if decoded != g {
				t.Errorf("grant %s (%v) decodes to\n%+v\nnot what was encoded\n%+v", body, status, decoded, g)
			}
			memo.Remember(body, &g)
			if got, err := decodeRow[jit.Grant](memo)(body); err != nil || got != decoded {
				t.Errorf("memo gives %+v, %v for %s", got, err, body)
			}
		}
	}
}

// The writer caches which policy covers a VM; every way policy_vms changes
// (a policy written with other VMs, deleted, a rolled-back write) must show
// in the next lookup.
func TestWriterPolicyOfVMFollowsPolicyChanges(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	vm := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
	policy := func(name string, vms ...string) jit.Policy {
		p := jit.Policy{ID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/" + name, Name: name, Location: "westeurope"}
		for _, v := range vms {
			p.VirtualMachines = append(p.VirtualMachines, jit.VMPolicy{ID: v, Ports: []jit.PortPolicy{{Number: 22, Protocol: "TCP", AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"}}})
		}
		return p
	}
	// want "" means no policy covers vm.
	check := func(step, want string) {
		t.Helper()
		err := s.InTx(ctx, func(tx jit.Tx) error {
			for range 2 { // the second lookup comes from the cache
				p, err := tx.PolicyForVM(ctx, vm)
				switch {
				case want == "" && !errors.Is(err, store.ErrNotFound):
					return fmt.Errorf("got %s, %v; want not found", p.Name, err)
				case want != "" && (err != nil || p.Name != want):
					return fmt.Errorf("got %q, %v; want %s", p.Name, err, want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	put := func(p jit.Policy) {
		t.Helper()
		if err := s.InTx(ctx, func(tx jit.Tx) error { return tx.PutPolicy(ctx, p) }); err != nil {
			t.Fatal(err)
		}
	}
	check("no policy yet", "")
	put(policy("p1", vm))
	check("p1 covers vm", "p1")
	put(policy("p1"))
	check("p1 without vm", "")
	put(policy("p2", vm))
	check("p2 covers vm", "p2")
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx jit.Tx) error {
		if err := tx.DeletePolicy(ctx, policy("p2").ID); err != nil {
			return err
		}
		if _, err := tx.PolicyForVM(ctx, vm); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("after delete in the same transaction: %v", err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	check("delete rolled back", "p2")
	if err := s.InTx(ctx, func(tx jit.Tx) error { return tx.DeletePolicy(ctx, policy("p2").ID) }); err != nil {
		t.Fatal(err)
	}
	check("p2 deleted", "")
}

// The writer's cache of each VM's active grants must list exactly what the
// SQL query lists, in its order, through any mix of inserted requests
// (active and pending grants, equal start times), grants ended and
// activated, and transactions rolled back. The read pool, which has no
// cache, is the reference.
func TestWriterActiveGrantsMatchSQL(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	rng := rand.New(rand.NewPCG(7, 11))
	vms := []string{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/A",
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/b", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/c"}
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var ids []string // every grant inserted and committed
	n := 0
	list := func(tx jit.Tx, vm string) ([]string, error) {
		gs, err := tx.ListGrants(ctx, jit.GrantFilter{VMID: vm, ActiveOnly: true})
		var out []string
		for _, g := range gs {
			out = append(out, g.ID)
		}
		return out, err
	}
	for step := range 400 {
		var inserted []string
		boom := errors.New("rolled back")
		rollback := rng.IntN(6) == 0
		err := s.InTx(ctx, func(tx jit.Tx) error {
			for range 1 + rng.IntN(3) {
				switch op := rng.IntN(4); {
				case op <= 1 || len(ids) == 0: // a request with 1-3 grants
					n++
					req := jit.Request{ID: fmt.Sprintf("r%04d", n), PolicyID: "p", StartTime: base.Add(time.Duration(rng.IntN(5)) * time.Second)}
					for i := range 1 + rng.IntN(3) {
						st := jit.StatusInitiated
						if rng.IntN(4) == 0 {
							st = jit.StatusPending
						}
						req.Grants = append(req.Grants, jit.Grant{ID: fmt.Sprintf("g%04d-%d", n, i), VMID: vms[rng.IntN(len(vms))], Port: 22 + i,
							Source: jit.AnySource, StartTime: req.StartTime, EndTime: req.StartTime.Add(time.Hour), Status: st})
					}
					if err := tx.InsertRequest(ctx, req); err != nil {
						return err
					}
					for _, g := range req.Grants {
						inserted = append(inserted, g.ID)
					}
				case op == 2: // end a grant
					g, err := tx.GetGrant(ctx, ids[rng.IntN(len(ids))])
					if err != nil {
						return err
					}
					g.Status, g.StatusReason, g.EndedAt = jit.StatusRevoked, jit.ReasonUserRequested, base
					if err := tx.UpdateGrant(ctx, g); err != nil {
						return err
					}
				default: // (re)activate one, as an approval does
					g, err := tx.GetGrant(ctx, ids[rng.IntN(len(ids))])
					if err != nil {
						return err
					}
					g.Status, g.StatusReason, g.EndedAt = jit.StatusInitiated, jit.ReasonUserRequested, time.Time{}
					if err := tx.UpdateGrant(ctx, g); err != nil {
						return err
					}
				}
				// Read in the middle of the transaction too.
				if _, err := list(tx, vms[rng.IntN(len(vms))]); err != nil {
					return err
				}
			}
			if rollback {
				return boom
			}
			return nil
		})
		if rollback && !errors.Is(err, boom) || !rollback && err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if !rollback {
			ids = append(ids, inserted...)
		}
		for _, vm := range vms {
			var cached, fromSQL []string
			if err := s.InTx(ctx, func(tx jit.Tx) error { var err error; cached, err = list(tx, vm); return err }); err != nil {
				t.Fatal(err)
			}
			if err := s.ReadTx(ctx, func(tx jit.Tx) error { var err error; fromSQL, err = list(tx, vm); return err }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cached, fromSQL) {
				t.Fatalf("step %d, VM %s: writer lists %v, SQL %v", step, vm, cached, fromSQL)
			}
		}
	}
}

// Policies read through the writer's cache (decoded once, then copied from
// jsonmemo) share no memory with each other: a caller changing the
// policy it got (its VMs, ports, prefixes, approval rules) changes no
// later read. The reflect walk fails if a field that can share memory is
// added to Policy and the copy misses it.
func TestPolicyReadsShareNoMemory(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	p := jit.Policy{ID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/p", Name: "p",
		VirtualMachines: []jit.VMPolicy{{ID: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1", Ports: []jit.PortPolicy{{
			Number: 22, AllowedSourceAddressPrefixes: []string{"198.18.0.0/24"},
			RequireApproval: &jit.ApprovalRule{Approvers: "ops", Count: 1},
		}}}}}
	if err := s.InTx(ctx, func(tx jit.Tx) error { return tx.PutPolicy(ctx, p) }); err != nil {
		t.Fatal(err)
	}
	read := func() jit.Policy {
		t.Helper()
		var got jit.Policy
		err := s.InTx(ctx, func(tx jit.Tx) error { var err error; got, err = tx.GetPolicy(ctx, p.ID); return err })
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	a, b := read(), read()
	if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(a.VirtualMachines, p.VirtualMachines) {
		t.Fatalf("reads differ: %+v\n%+v", a, b)
	}
	assertNoSharedMemory(t, reflect.ValueOf(a), reflect.ValueOf(b), "Policy")
	before, _ := json.Marshal(b)
	a.VirtualMachines[0].ID = "changed"
	a.VirtualMachines[0].Ports[0].Number = 3389
	a.VirtualMachines[0].Ports[0].AllowedSourceAddressPrefixes[0] = "changed"
	a.VirtualMachines[0].Ports[0].RequireApproval.Count = 9
	if after, _ := json.Marshal(b); string(after) != string(before) {
		t.Fatalf("changing one read changed another:\n%s\n%s", before, after)
	}
	if c := read(); !reflect.DeepEqual(c, b) {
		t.Fatalf("changing a read changed what the next read gets: %+v", c)
	}
}

// assertNoSharedMemory fails if a and b (equal values) share a slice's
// backing array or a pointer's target anywhere.
func assertNoSharedMemory(t *testing.T, a, b reflect.Value, path string) {
	t.Helper()
	switch a.Kind() {
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			t.Errorf("%s shares its backing array", path)
		}
		for i := range a.Len() {
			assertNoSharedMemory(t, a.Index(i), b.Index(i), path+"[]")
		}
	case reflect.Pointer:
		if !a.IsNil() && a.Pointer() == b.Pointer() {
			t.Errorf("%s points to the same value", path)
		}
		if !a.IsNil() {
			assertNoSharedMemory(t, a.Elem(), b.Elem(), path)
		}
	case reflect.Map:
		if !a.IsNil() && a.Pointer() == b.Pointer() {
			t.Errorf("%s is the same map", path)
		}
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() {
				assertNoSharedMemory(t, a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name)
			}
		}
	}
}

// A key's id in key_ids given by a rolled-back transaction is forgotten
// with it: the same id may go to another key next, and a request for the
// first key must not be filed under the second.
func TestCacheForgetsRolledBackKeyIDs(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	req := func(id, policy string) jit.Request {
		vm := "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/" + id
		return jit.Request{ID: id, PolicyID: jit.PolicyID("s1", "rg1", "westeurope", policy), StartTime: start,
			Grants: []jit.Grant{{ID: id + "-g", VMID: vm, Port: 22, StartTime: start, EndTime: start.Add(time.Hour), Status: jit.StatusInitiated}}}
	}
	boom := errors.New("boom")
	if err := s.InTx(ctx, func(tx jit.Tx) error {
		if err := tx.InsertRequest(ctx, req("r1", "p")); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}
	for _, r := range []jit.Request{req("r2", "q"), req("r3", "p")} {
		if err := s.InTx(ctx, func(tx jit.Tx) error { return tx.InsertRequest(ctx, r) }); err != nil {
			t.Fatal(err)
		}
	}
	for policy, want := range map[string]string{"p": "r3", "q": "r2"} {
		err := s.ReadTx(ctx, func(tx jit.Tx) error {
			rs, err := tx.ListRequests(ctx, jit.PolicyID("s1", "rg1", "westeurope", policy), 0)
			if err != nil {
				return err
			}
			if len(rs) != 1 || rs[0].ID != want {
				t.Errorf("requests of %s = %+v, want only %s", policy, rs, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
