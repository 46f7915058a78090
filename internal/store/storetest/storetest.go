// Package storetest owns the conformance suite every persistence backend
// (memstore, sqlite, later postgres) must pass: the behaviour of jit.Store
// and store.ObjectStore that the JIT service relies on, stated once and
// checked against each backend.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Store is what a backend provides: the JIT service's store and the generic
// object store, sharing one set of data.
type Store interface {
	jit.Store
	store.ObjectStore
}

// ReadCounter reads the int object ("counter", "c") in a read-only
// transaction: through ObjectReadTx with objects, else through ReadTx. It is
// the read the tests of reads beside an open write make.
func ReadCounter(ctx context.Context, s Store, objects bool) (int, error) {
	var n int
	if objects {
		err := s.ObjectReadTx(ctx, func(o store.Objects) error { return o.GetObject(ctx, "counter", "c", &n) })
		return n, err
	}
	err := s.ReadTx(ctx, func(tx jit.Tx) error { return tx.GetObject(ctx, "counter", "c", &n) })
	return n, err
}

// Run runs the suite. open returns a new, empty store for each subtest; it
// should register its own cleanup (t.Cleanup) to close it.
func Run(t *testing.T, open func(t *testing.T) Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, Store)
	}{
		{"Objects", testObjects},
		{"ObjectsSharedWithJITTx", testObjectsShared},
		{"GetVM", testGetVM},
		{"Policies", testPolicies},
		{"PolicyConflict", testPolicyConflict},
		{"ListPolicies", testListPolicies},
		{"TimesRoundTrip", testTimesRoundTrip},
		{"Requests", testRequests},
		{"Grants", testGrants},
		{"ListGrants", testListGrants},
		{"ActiveGrantUpdates", testActiveGrantUpdates},
		{"DueGrants", testDueGrants},
		{"Approvals", testApprovals},
		{"Rollback", testRollback},
		{"RollbackOnPanic", testRollbackOnPanic},
		{"ObjectTxRollback", testObjectTxRollback},
		{"CancelledContext", testCancelledContext},
		{"ConcurrentCounter", testConcurrentCounter},
		{"ConcurrentRequests", testConcurrentRequests},
		{"ReadTxSeesCommitted", testReadTxSeesCommitted},
		{"ReadTxSnapshot", testReadTxSnapshot},
		{"ReadTxKeepsNoWrites", testReadTxKeepsNoWrites},
		{"ObjectReadTxKeepsNoWrites", testObjectReadTxKeepsNoWrites},
		{"ReadTxCancelledContext", testReadTxCancelledContext},
		{"ReadTxBesideInTx", testReadTxBesideInTx},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// t0 has nanoseconds so that any rounding in a backend shows.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)

func vmID(sub, rg, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/%s", sub, rg, name)
}

func policy(sub, rg, loc, name string, vms ...string) jit.Policy {
	p := jit.Policy{
		ID:                jit.PolicyID(sub, rg, loc, name),
		Name:              name,
		Location:          loc,
		Kind:              "Basic",
		ProvisioningState: jit.ProvisioningSucceeded,
		CreatedAt:         t0,
		UpdatedAt:         t0.Add(time.Minute),
	}
	for _, v := range vms {
		p.VirtualMachines = append(p.VirtualMachines, jit.VMPolicy{ID: v, Ports: []jit.PortPolicy{
			{Number: 22, Protocol: netrule.Tcp, AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"},
			{Number: 3389, Protocol: netrule.Any, AllowedSourceAddressPrefixes: []string{"198.18.0.0/15", "2001:2::/48"}, MaxRequestAccessDuration: "PT1H"},
		}})
	}
	return p
}

func mustSource(t *testing.T, s string) jit.Source {
	t.Helper()
	src, err := jit.ParseSource(s)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func grant(t *testing.T, id, policyID, vm string, port int, start, end time.Time) jit.Grant {
	return jit.Grant{
		ID: id, PolicyID: policyID, VMID: vm, Port: port, Protocol: "TCP",
		Source:    mustSource(t, "198.18.0.7"),
		StartTime: start, EndTime: end,
		Status: jit.StatusInitiated, StatusReason: jit.ReasonUserRequested,
	}
}

func request(id, policyID string, start time.Time, grants ...jit.Grant) jit.Request {
	for i := range grants {
		grants[i].RequestID = id
	}
	return jit.Request{
		ID: id, PolicyID: policyID, Requestor: "alice@example.com", SourceAddress: "198.18.0.7",
		Justification: "deploy " + id, StartTime: start, Grants: grants,
	}
}

func inTx(t *testing.T, s Store, fn func(ctx context.Context, tx jit.Tx) error) {
	t.Helper()
	ctx := context.Background()
	if err := s.InTx(ctx, func(tx jit.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("InTx: %v", err)
	}
}

func objTx(t *testing.T, s Store, fn func(ctx context.Context, o store.Objects) error) {
	t.Helper()
	ctx := context.Background()
	if err := s.ObjectTx(ctx, func(o store.Objects) error { return fn(ctx, o) }); err != nil {
		t.Fatalf("ObjectTx: %v", err)
	}
}

// sameJSON compares values by their JSON encoding, which is what callers
// see; times must come back in UTC with every nanosecond for this to hold.
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("%s: got error %v, want one wrapping store.ErrNotFound", what, err)
	}
}

func grantIDs(gs []jit.Grant) []string {
	ids := make([]string, len(gs))
	for i, g := range gs {
		ids[i] = g.ID
	}
	return ids
}

func sortedIDs(gs []jit.Grant) []string {
	ids := grantIDs(gs)
	sort.Strings(ids)
	return ids
}

type doc struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

func testObjects(t *testing.T, s Store) {
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		// Keys in byte order are "B" < "a" < "a/b" < "a0": key order is
		// byte order, as Go compares strings.
		for _, k := range []string{"a0", "a", "B", "a/b"} {
			if err := o.PutObject(ctx, "thing", k, doc{Name: k, N: len(k)}); err != nil {
				return err
			}
		}
		return o.PutObject(ctx, "other", "a", doc{Name: "other"})
	})
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		var d doc
		if err := o.GetObject(ctx, "thing", "a/b", &d); err != nil {
			return err
		}
		if d != (doc{Name: "a/b", N: 3}) {
			t.Errorf("GetObject = %+v", d)
		}
		wantNotFound(t, "GetObject missing key", o.GetObject(ctx, "thing", "zzz", &d))
		wantNotFound(t, "GetObject missing kind", o.GetObject(ctx, "nokind", "a", &d))
		var keys []string
		if err := o.ListObjects(ctx, "thing", func(key string, body []byte) error {
			var d doc
			if err := json.Unmarshal(body, &d); err != nil {
				return err
			}
			if d.Name != key {
				t.Errorf("ListObjects: key %q has body %s", key, body)
			}
			keys = append(keys, key)
			return nil
		}); err != nil {
			return err
		}
		if want := []string{"B", "a", "a/b", "a0"}; !slices.Equal(keys, want) {
			t.Errorf("ListObjects keys = %q, want %q", keys, want)
		}
		// Overwrite, delete, delete again (not an error).
		if err := o.PutObject(ctx, "thing", "a", doc{Name: "a", N: 100}); err != nil {
			return err
		}
		if err := o.GetObject(ctx, "thing", "a", &d); err != nil || d.N != 100 {
			t.Errorf("after overwrite: %+v, %v", d, err)
		}
		if err := o.DeleteObject(ctx, "thing", "a0"); err != nil {
			return err
		}
		if err := o.DeleteObject(ctx, "thing", "a0"); err != nil {
			t.Errorf("deleting a missing object: %v", err)
		}
		wantNotFound(t, "GetObject deleted", o.GetObject(ctx, "thing", "a0", &d))
		return nil
	})
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		count := func(kind string) []string {
			var keys []string
			if err := o.ListObjects(ctx, kind, func(key string, _ []byte) error {
				keys = append(keys, key)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return keys
		}
		if got := count("thing"); !slices.Equal(got, []string{"B", "a", "a/b"}) {
			t.Errorf("after delete: %q", got)
		}
		if got := count("other"); !slices.Equal(got, []string{"a"}) {
			t.Errorf("kind other: %q", got)
		}
		if got := count("nokind"); len(got) != 0 {
			t.Errorf("empty kind: %q", got)
		}
		stop := errors.New("stop")
		calls := 0
		err := o.ListObjects(ctx, "thing", func(string, []byte) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("ListObjects with failing fn: err %v after %d calls, want stop after 1", err, calls)
		}
		return nil
	})
}

// testObjectsShared checks that InTx's Tx and ObjectTx see the same objects.
func testObjectsShared(t *testing.T, s Store) {
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		return tx.PutObject(ctx, "k", "x", doc{Name: "from jit tx"})
	})
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		var d doc
		if err := o.GetObject(ctx, "k", "x", &d); err != nil {
			return err
		}
		if d.Name != "from jit tx" {
			t.Errorf("ObjectTx sees %+v", d)
		}
		return o.PutObject(ctx, "k", "y", doc{Name: "from object tx"})
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		var d doc
		if err := tx.GetObject(ctx, "k", "y", &d); err != nil {
			return err
		}
		if d.Name != "from object tx" {
			t.Errorf("InTx sees %+v", d)
		}
		return nil
	})
}

func testGetVM(t *testing.T, s Store) {
	id := vmID("s1", "RG1", "VM1")
	vm := inventory.VM{ID: id, Name: "VM1", Cloud: inventory.Azure, Provider: inventory.ProviderSim, Location: "westeurope", NICs: []string{id + "-nic"}}
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		return o.PutObject(ctx, inventory.KindVM, inventory.Key(id), vm)
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		got, err := tx.GetVM(ctx, strings.ToUpper(id))
		if err != nil {
			return err
		}
		sameJSON(t, "GetVM", got, vm)
		_, err = tx.GetVM(ctx, vmID("s1", "rg1", "nope"))
		wantNotFound(t, "GetVM missing", err)
		return nil
	})
}

func testPolicies(t *testing.T, s Store) {
	vmA, vmB, vmC := vmID("s1", "rg1", "a"), vmID("s1", "rg1", "b"), vmID("s1", "rg1", "c")
	p := policy("s1", "rg1", "westeurope", "p1", vmA, vmB)
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		if err := tx.PutPolicy(ctx, p); err != nil {
			return err
		}
		// Read-your-writes inside the same transaction.
		got, err := tx.GetPolicy(ctx, p.ID)
		if err != nil {
			return err
		}
		sameJSON(t, "GetPolicy in tx", got, p)
		return nil
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		got, err := tx.GetPolicy(ctx, strings.ToUpper(p.ID))
		if err != nil {
			return err
		}
		sameJSON(t, "GetPolicy upper-case ID", got, p)
		_, err = tx.GetPolicy(ctx, jit.PolicyID("s1", "rg1", "westeurope", "nope"))
		wantNotFound(t, "GetPolicy missing", err)

		for _, v := range []string{vmA, strings.ToUpper(vmB)} {
			got, err := tx.PolicyForVM(ctx, v)
			if err != nil {
				t.Errorf("PolicyForVM(%s): %v", v, err)
			} else if got.ID != p.ID {
				t.Errorf("PolicyForVM(%s) = %s", v, got.ID)
			}
		}
		_, err = tx.PolicyForVM(ctx, vmC)
		wantNotFound(t, "PolicyForVM unguarded", err)

		// Replacing the policy re-indexes its VMs: A leaves, C joins.
		p.VirtualMachines = policy("s1", "rg1", "westeurope", "p1", vmB, vmC).VirtualMachines
		p.ProvisioningState = jit.ProvisioningUpdating
		return tx.PutPolicy(ctx, p)
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		got, err := tx.GetPolicy(ctx, p.ID)
		if err != nil {
			return err
		}
		sameJSON(t, "GetPolicy after replace", got, p)
		_, err = tx.PolicyForVM(ctx, vmA)
		wantNotFound(t, "PolicyForVM of VM removed from policy", err)
		if got, err := tx.PolicyForVM(ctx, vmC); err != nil || got.ID != p.ID {
			t.Errorf("PolicyForVM(vmC) = %s, %v", got.ID, err)
		}
		// vmA is free now: another policy may take it.
		return tx.PutPolicy(ctx, policy("s1", "rg1", "westeurope", "p2", vmA))
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		if err := tx.DeletePolicy(ctx, strings.ToUpper(p.ID)); err != nil {
			return err
		}
		_, err := tx.GetPolicy(ctx, p.ID)
		wantNotFound(t, "GetPolicy deleted", err)
		for _, v := range []string{vmB, vmC} {
			_, err := tx.PolicyForVM(ctx, v)
			wantNotFound(t, "PolicyForVM after delete", err)
		}
		wantNotFound(t, "DeletePolicy missing", tx.DeletePolicy(ctx, p.ID))
		// Its VMs are free for another policy.
		return tx.PutPolicy(ctx, policy("s1", "rg1", "westeurope", "p3", vmB, vmC))
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		got, err := tx.PolicyForVM(ctx, vmB)
		if err != nil || got.Name != "p3" {
			t.Errorf("PolicyForVM(vmB) after re-adding = %s, %v", got.ID, err)
		}
		got, err = tx.PolicyForVM(ctx, vmA)
		if err != nil || got.Name != "p2" {
			t.Errorf("PolicyForVM(vmA) = %s, %v", got.ID, err)
		}
		return nil
	})
}

func testPolicyConflict(t *testing.T, s Store) {
	ctx := context.Background()
	vmA, vmB := vmID("s1", "rg1", "a"), vmID("s1", "rg1", "b")
	p1 := policy("s1", "rg1", "westeurope", "p1", vmA)
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error { return tx.PutPolicy(ctx, p1) })

	// vmA (spelled in another case) is in p1 already.
	p2 := policy("s1", "rg1", "westeurope", "p2", vmB, strings.ToUpper(vmA))
	err := s.InTx(ctx, func(tx jit.Tx) error { return tx.PutPolicy(ctx, p2) })
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutPolicy with a VM of another policy: %v, want ErrConflict", err)
	}
	if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(vmA)) {
		t.Errorf("conflict error %q does not name the VM %s", err, vmA)
	}
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		_, err := tx.GetPolicy(ctx, p2.ID)
		wantNotFound(t, "GetPolicy of conflicting policy", err)
		_, err = tx.PolicyForVM(ctx, vmB)
		wantNotFound(t, "PolicyForVM of the conflicting policy's other VM", err)
		got, err := tx.PolicyForVM(ctx, vmA)
		if err != nil || got.ID != p1.ID {
			t.Errorf("PolicyForVM(vmA) = %s, %v; want it still in p1", got.ID, err)
		}
		// Re-putting p1 with its own VM is not a conflict.
		return tx.PutPolicy(ctx, p1)
	})
}

func testListPolicies(t *testing.T, s Store) {
	a := policy("s1", "rg1", "westeurope", "a", vmID("s1", "rg1", "va"))
	b := policy("s1", "rg2", "eastus", "b", vmID("s1", "rg2", "vb"))
	c := policy("S10", "rg1", "WestEurope", "c", vmID("S10", "rg1", "vc")) // s10 must not fall inside scope s1
	d := policy("s2", "RG1", "westeurope", "d", vmID("s2", "RG1", "vd"))
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		for _, p := range []jit.Policy{d, c, b, a} {
			if err := tx.PutPolicy(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
	cases := []struct {
		scope, location string
		want            []string
	}{
		{"/", "", []string{"a", "b", "c", "d"}},
		{"", "", []string{"a", "b", "c", "d"}},
		{"/subscriptions/S1", "", []string{"a", "b"}},
		{"/subscriptions/s1/", "", []string{"a", "b"}},
		{"/subscriptions/s10", "", []string{"c"}},
		{"/subscriptions/s1/resourceGroups/RG1", "", []string{"a"}},
		{"/subscriptions/s2/resourcegroups/rg1", "", []string{"d"}},
		{"/subscriptions/s1/resourceGroups/rg", "", nil},
		{strings.ToUpper(a.ID), "", []string{"a"}},
		{"/subscriptions/s3", "", nil},
		{"/", "WESTEUROPE", []string{"a", "c", "d"}},
		{"", "eastus", []string{"b"}},
		{"/subscriptions/s1", "westeurope", []string{"a"}},
		{"/", "northeurope", nil},
	}
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		for _, tc := range cases {
			ps, err := tx.ListPolicies(ctx, tc.scope, tc.location)
			if err != nil {
				return err
			}
			var names []string
			for _, p := range ps {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, tc.want) {
				t.Errorf("ListPolicies(%q, %q) = %q, want %q", tc.scope, tc.location, names, tc.want)
			}
		}
		ps, err := tx.ListPolicies(ctx, "/", "")
		if err != nil {
			return err
		}
		if len(ps) == 4 {
			sameJSON(t, "ListPolicies body", ps[2], c)
		}
		return nil
	})
}

// testTimesRoundTrip: times written in any zone come back as the same
// instant in UTC, to the nanosecond, in every place a backend stores them.
func testTimesRoundTrip(t *testing.T, s Store) {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	at := time.Date(2031, 7, 8, 9, 10, 11, 987654321, zone)
	vm := vmID("s1", "rg1", "a")
	p := policy("s1", "rg1", "westeurope", "p", vm)
	p.CreatedAt, p.UpdatedAt = at, at.Add(time.Nanosecond)
	g := grant(t, "g1", p.ID, vm, 22, at, at.Add(time.Hour+time.Nanosecond))
	r := request("r1", p.ID, at, g)
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		if err := tx.PutPolicy(ctx, p); err != nil {
			return err
		}
		return tx.InsertRequest(ctx, r)
	})
	check := func(what string, got, want time.Time) {
		t.Helper()
		if !got.Equal(want) || got.Location() != time.UTC || got.Nanosecond() != want.Nanosecond() {
			t.Errorf("%s = %v, want %v in UTC", what, got, want.UTC())
		}
	}
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		gp, err := tx.GetPolicy(ctx, p.ID)
		if err != nil {
			return err
		}
		check("policy CreatedAt", gp.CreatedAt, p.CreatedAt)
		check("policy UpdatedAt", gp.UpdatedAt, p.UpdatedAt)
		gg, err := tx.GetGrant(ctx, "g1")
		if err != nil {
			return err
		}
		check("grant StartTime", gg.StartTime, g.StartTime)
		check("grant EndTime", gg.EndTime, g.EndTime)
		rs, err := tx.ListRequests(ctx, p.ID, 0)
		if err != nil {
			return err
		}
		if len(rs) != 1 {
			t.Fatalf("ListRequests: %d requests", len(rs))
		}
		check("request StartTime", rs[0].StartTime, r.StartTime)
		next, ok, err := tx.NextEndTime(ctx)
		if err != nil || !ok {
			t.Fatalf("NextEndTime: %v %v", ok, err)
		}
		check("NextEndTime", next, g.EndTime)
		gg.Status, gg.StatusReason = jit.StatusRevoked, jit.ReasonUserRequested
		gg.EndedAt, gg.AppliedAt, gg.Applied = at.Add(time.Minute+3), at.Add(time.Minute+7), true
		return tx.UpdateGrant(ctx, gg)
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		gg, err := tx.GetGrant(ctx, "g1")
		if err != nil {
			return err
		}
		check("grant EndedAt", gg.EndedAt, at.Add(time.Minute+3))
		check("grant AppliedAt", gg.AppliedAt, at.Add(time.Minute+7))
		return nil
	})
}

func testRequests(t *testing.T, s Store) {
	ctx := context.Background()
	vmA, vmB, vmC := vmID("s1", "rg1", "a"), vmID("s1", "rg1", "b"), vmID("s1", "rg1", "c")
	p := policy("s1", "rg1", "westeurope", "p", vmA, vmB)
	q := policy("s1", "rg1", "westeurope", "q", vmC)
	end := t0.Add(3 * time.Hour)
	r1 := request("r1", p.ID, t0,
		grant(t, "g1", p.ID, vmA, 22, t0, end),
		grant(t, "g2", p.ID, vmA, 3389, t0, end),
		grant(t, "g3", p.ID, vmB, 22, t0, end))
	r1.Grants[2].Source = jit.AnySource
	r2 := request("r2", p.ID, t0.Add(time.Hour), grant(t, "g4", p.ID, vmA, 22, t0.Add(time.Hour), end))
	r3 := request("r3", p.ID, t0.Add(2*time.Hour), grant(t, "g5", p.ID, vmB, 3389, t0.Add(2*time.Hour), end))
	rq := request("rq", q.ID, t0.Add(3*time.Hour), grant(t, "g6", q.ID, vmC, 22, t0.Add(3*time.Hour), end.Add(time.Hour)))
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		for _, pol := range []jit.Policy{p, q} {
			if err := tx.PutPolicy(ctx, pol); err != nil {
				return err
			}
		}
		// Inserted out of time order: listing sorts by start time.
		for _, r := range []jit.Request{r2, r1, rq, r3} {
			if err := tx.InsertRequest(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		rs, err := tx.ListRequests(ctx, strings.ToUpper(p.ID), 0)
		if err != nil {
			return err
		}
		sameJSON(t, "ListRequests(p)", rs, []jit.Request{r3, r2, r1})
		rs, err = tx.ListRequests(ctx, p.ID, 2)
		if err != nil {
			return err
		}
		sameJSON(t, "ListRequests(p, limit 2)", rs, []jit.Request{r3, r2})
		rs, err = tx.ListRequests(ctx, q.ID, 0)
		if err != nil {
			return err
		}
		sameJSON(t, "ListRequests(q)", rs, []jit.Request{rq})
		rs, err = tx.ListRequests(ctx, jit.PolicyID("s1", "rg1", "westeurope", "none"), 0)
		if err != nil || len(rs) != 0 {
			t.Errorf("ListRequests(unknown policy) = %d requests, %v", len(rs), err)
		}
		// Attached grants are the current ones, not a copy taken at insert.
		g, err := tx.GetGrant(ctx, "g2")
		if err != nil {
			return err
		}
		g, err = g.End(jit.ReasonUserRequested, t0.Add(time.Minute))
		if err != nil {
			return err
		}
		return tx.UpdateGrant(ctx, g)
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		rs, err := tx.ListRequests(ctx, p.ID, 0)
		if err != nil {
			return err
		}
		if len(rs) != 3 || len(rs[2].Grants) != 3 {
			t.Fatalf("ListRequests: %+v", rs)
		}
		if g := rs[2].Grants[1]; g.ID != "g2" || g.Status != jit.StatusRevoked || !g.EndedAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("grant g2 as attached to its request: %+v", g)
		}
		return nil
	})
	// A request ID is unique.
	err := s.InTx(ctx, func(tx jit.Tx) error {
		return tx.InsertRequest(ctx, request("r1", p.ID, t0.Add(5*time.Hour), grant(t, "g9", p.ID, vmA, 22, t0, end)))
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("InsertRequest with an existing ID: %v, want ErrConflict", err)
	}
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		_, err := tx.GetGrant(ctx, "g9")
		wantNotFound(t, "grant of the rejected request", err)
		return nil
	})
}

func testGrants(t *testing.T, s Store) {
	vm := vmID("s1", "rg1", "a")
	p := policy("s1", "rg1", "westeurope", "p", vm)
	g1 := grant(t, "g1", p.ID, vm, 22, t0, t0.Add(time.Hour))
	g1.Source = mustSource(t, "2001:2::/48")
	g1.Protocol = "*"
	r := request("r1", p.ID, t0, g1)
	g1 = r.Grants[0]
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		if err := tx.PutPolicy(ctx, p); err != nil {
			return err
		}
		if err := tx.InsertRequest(ctx, r); err != nil {
			return err
		}
		got, err := tx.GetGrant(ctx, "g1")
		if err != nil {
			return err
		}
		sameJSON(t, "GetGrant", got, g1)
		_, err = tx.GetGrant(ctx, "nope")
		wantNotFound(t, "GetGrant missing", err)
		wantNotFound(t, "UpdateGrant missing", tx.UpdateGrant(ctx, grant(t, "nope", p.ID, vm, 22, t0, t0)))

		upd := got
		upd.Status, upd.StatusReason = jit.StatusRevoked, jit.ReasonExpired
		upd.EndedAt = t0.Add(time.Hour)
		upd.Applied, upd.AppliedAt = true, t0.Add(time.Hour+time.Second)
		upd.ProviderError = "nsg busy"
		// Not mutable: UpdateGrant must keep the stored values.
		upd.Port, upd.EndTime, upd.VMID = 9999, t0.Add(100*time.Hour), vmID("s9", "rg9", "z")
		return tx.UpdateGrant(ctx, upd)
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		got, err := tx.GetGrant(ctx, "g1")
		if err != nil {
			return err
		}
		want := g1
		want.Status, want.StatusReason = jit.StatusRevoked, jit.ReasonExpired
		want.EndedAt = t0.Add(time.Hour)
		want.Applied, want.AppliedAt = true, t0.Add(time.Hour+time.Second)
		want.ProviderError = "nsg busy"
		sameJSON(t, "GetGrant after UpdateGrant", got, want)
		return nil
	})
}

func testListGrants(t *testing.T, s Store) {
	vmA, vmB := vmID("s1", "rg1", "a"), vmID("s1", "rg1", "b")
	vmC := vmID("s1", "rg1", "c")
	p := policy("s1", "rg1", "westeurope", "p", vmA, vmB)
	q := policy("s1", "rg1", "westeurope", "q", vmC)
	end := t0.Add(24 * time.Hour)
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		for _, pol := range []jit.Policy{p, q} {
			if err := tx.PutPolicy(ctx, pol); err != nil {
				return err
			}
		}
		for _, r := range []jit.Request{
			request("r1", p.ID, t0,
				grant(t, "a22-old", p.ID, vmA, 22, t0, end),
				grant(t, "a3389", p.ID, vmA, 3389, t0, end),
				grant(t, "b22", p.ID, vmB, 22, t0, end)),
			request("r2", p.ID, t0.Add(time.Hour), grant(t, "a22-new", p.ID, vmA, 22, t0.Add(time.Hour), end)),
			request("r3", q.ID, t0.Add(2*time.Hour), grant(t, "c22", q.ID, vmC, 22, t0.Add(2*time.Hour), end)),
		} {
			if err := tx.InsertRequest(ctx, r); err != nil {
				return err
			}
		}
		g, err := tx.GetGrant(ctx, "a22-old")
		if err != nil {
			return err
		}
		g, err = g.End(jit.ReasonNewerRequestInitiated, t0.Add(time.Hour))
		if err != nil {
			return err
		}
		return tx.UpdateGrant(ctx, g)
	})
	cases := []struct {
		name string
		f    jit.GrantFilter
		want []string // sorted
	}{
		{"all", jit.GrantFilter{}, []string{"a22-new", "a22-old", "a3389", "b22", "c22"}},
		{"vm, other case", jit.GrantFilter{VMID: strings.ToUpper(vmA)}, []string{"a22-new", "a22-old", "a3389"}},
		{"vm and port", jit.GrantFilter{VMID: vmA, Port: 22}, []string{"a22-new", "a22-old"}},
		{"vm active", jit.GrantFilter{VMID: vmA, ActiveOnly: true}, []string{"a22-new", "a3389"}},
		{"vm port active", jit.GrantFilter{VMID: vmA, Port: 22, ActiveOnly: true}, []string{"a22-new"}},
		{"port", jit.GrantFilter{Port: 22}, []string{"a22-new", "a22-old", "b22", "c22"}},
		{"policy, other case", jit.GrantFilter{PolicyID: strings.ToUpper(p.ID)}, []string{"a22-new", "a22-old", "a3389", "b22"}},
		{"policy active port", jit.GrantFilter{PolicyID: p.ID, Port: 22, ActiveOnly: true}, []string{"a22-new", "b22"}},
		{"active", jit.GrantFilter{ActiveOnly: true}, []string{"a22-new", "a3389", "b22", "c22"}},
		{"unknown vm", jit.GrantFilter{VMID: vmID("s1", "rg1", "zzz")}, nil},
		{"limit newest", jit.GrantFilter{VMID: vmA, Limit: 1}, []string{"a22-new"}},
		{"limit all newest", jit.GrantFilter{Limit: 2}, []string{"a22-new", "c22"}},
	}
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		for _, tc := range cases {
			gs, err := tx.ListGrants(ctx, tc.f)
			if err != nil {
				return err
			}
			if got := sortedIDs(gs); !slices.Equal(got, tc.want) {
				t.Errorf("ListGrants %s = %q, want %q", tc.name, got, tc.want)
			}
			for i := 1; i < len(gs); i++ {
				if gs[i].StartTime.After(gs[i-1].StartTime) {
					t.Errorf("ListGrants %s: not newest first: %q", tc.name, grantIDs(gs))
					break
				}
			}
		}
		return nil
	})
}

func testDueGrants(t *testing.T, s Store) {
	vm := vmID("s1", "rg1", "a")
	p := policy("s1", "rg1", "westeurope", "p", vm)
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		if _, ok, err := tx.NextEndTime(ctx); err != nil || ok {
			t.Errorf("NextEndTime on an empty store: ok=%v err=%v", ok, err)
		}
		if gs, err := tx.DueGrants(ctx, t0.Add(1000*time.Hour), 0); err != nil || len(gs) != 0 {
			t.Errorf("DueGrants on an empty store: %q %v", grantIDs(gs), err)
		}
		if err := tx.PutPolicy(ctx, p); err != nil {
			return err
		}
		min := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
		if err := tx.InsertRequest(ctx, request("r1", p.ID, t0,
			grant(t, "e10", p.ID, vm, 1, t0, min(10)),
			grant(t, "e5a", p.ID, vm, 2, t0, min(5)),
			grant(t, "e20", p.ID, vm, 3, t0, min(20)),
			grant(t, "e1-revoked", p.ID, vm, 4, t0, min(1)),
		)); err != nil {
			return err
		}
		if err := tx.InsertRequest(ctx, request("r2", p.ID, t0, grant(t, "e5b", p.ID, vm, 5, t0, min(5)))); err != nil {
			return err
		}
		g, err := tx.GetGrant(ctx, "e1-revoked")
		if err != nil {
			return err
		}
		g, err = g.End(jit.ReasonUserRequested, t0)
		if err != nil {
			return err
		}
		return tx.UpdateGrant(ctx, g)
	})
	min := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	due := func(ctx context.Context, tx jit.Tx, now time.Time, limit int) []jit.Grant {
		t.Helper()
		gs, err := tx.DueGrants(ctx, now, limit)
		if err != nil {
			t.Fatalf("DueGrants: %v", err)
		}
		for i, g := range gs {
			if g.Status != jit.StatusInitiated || g.EndTime.After(now) {
				t.Errorf("DueGrants(%v) returned %s ending %v with status %s", now, g.ID, g.EndTime, g.Status)
			}
			if i > 0 && g.EndTime.Before(gs[i-1].EndTime) {
				t.Errorf("DueGrants not oldest end first: %q", grantIDs(gs))
			}
		}
		return gs
	}
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		next, ok, err := tx.NextEndTime(ctx)
		if err != nil || !ok || !next.Equal(min(5)) {
			t.Errorf("NextEndTime = %v %v %v, want %v (the revoked grant ending at 1m does not count)", next, ok, err, min(5))
		}
		if gs := due(ctx, tx, min(4), 0); len(gs) != 0 {
			t.Errorf("DueGrants(4m) = %q, want none (revoked grants are never due)", grantIDs(gs))
		}
		// The end time itself is due ("at or before now").
		if got := sortedIDs(due(ctx, tx, min(5), 0)); !slices.Equal(got, []string{"e5a", "e5b"}) {
			t.Errorf("DueGrants(5m) = %q", got)
		}
		gs := due(ctx, tx, min(10), 0)
		if got := grantIDs(gs); len(got) != 3 || got[2] != "e10" {
			t.Errorf("DueGrants(10m) = %q, want e5a and e5b then e10", got)
		}
		if got := sortedIDs(due(ctx, tx, min(10), 2)); !slices.Equal(got, []string{"e5a", "e5b"}) {
			t.Errorf("DueGrants(10m, limit 2) = %q", got)
		}
		// now in another zone is the same instant.
		if gs := due(ctx, tx, min(60).In(time.FixedZone("x", -7*3600)), 0); len(gs) != 4 {
			t.Errorf("DueGrants(60m) = %q, want 4 grants", grantIDs(gs))
		}
		// Expire everything; nothing is left to wait for.
		for _, g := range due(ctx, tx, min(60), 0) {
			ended, err := g.End(jit.ReasonExpired, min(60))
			if err != nil {
				return err
			}
			if err := tx.UpdateGrant(ctx, ended); err != nil {
				return err
			}
		}
		if next, ok, err := tx.NextEndTime(ctx); err != nil || ok {
			t.Errorf("NextEndTime with no initiated grants = %v %v %v", next, ok, err)
		}
		if gs := due(ctx, tx, min(1000), 0); len(gs) != 0 {
			t.Errorf("DueGrants after expiring all = %q", grantIDs(gs))
		}
		return nil
	})
}

// seed writes one of everything, for the rollback tests to try to change.
func seed(t *testing.T, s Store) (jit.Policy, string) {
	vm := vmID("s1", "rg1", "a")
	p := policy("s1", "rg1", "westeurope", "p", vm)
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		if err := tx.PutObject(ctx, "counter", "c", 1); err != nil {
			return err
		}
		if err := tx.PutObject(ctx, "counter", "keep", 7); err != nil {
			return err
		}
		if err := tx.PutPolicy(ctx, p); err != nil {
			return err
		}
		return tx.InsertRequest(ctx, request("r1", p.ID, t0, grant(t, "g1", p.ID, vm, 22, t0, t0.Add(time.Hour))))
	})
	return p, vm
}

// checkSeed asserts the store holds exactly what seed wrote.
func checkSeed(t *testing.T, s Store, p jit.Policy, vm string) {
	t.Helper()
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		checkSeedIn(t, ctx, tx, p, vm)
		return nil
	})
}

// checkSeedIn is checkSeed's assertions, in a transaction of the caller's.
func checkSeedIn(t *testing.T, ctx context.Context, tx jit.Tx, p jit.Policy, vm string) {
	t.Helper()
	var n int
	if err := tx.GetObject(ctx, "counter", "c", &n); err != nil || n != 1 {
		t.Errorf("counter c = %d, %v; want 1", n, err)
	}
	if err := tx.GetObject(ctx, "counter", "keep", &n); err != nil || n != 7 {
		t.Errorf("counter keep = %d, %v; want 7", n, err)
	}
	wantNotFound(t, "object written by the discarded tx", tx.GetObject(ctx, "counter", "new", &n))
	if got, err := tx.GetPolicy(ctx, p.ID); err != nil {
		t.Errorf("policy deleted by the discarded tx: %v", err)
	} else {
		sameJSON(t, "policy after the discarded tx", got, p)
	}
	if got, err := tx.PolicyForVM(ctx, vm); err != nil || got.ID != p.ID {
		t.Errorf("PolicyForVM after the discarded tx = %s, %v", got.ID, err)
	}
	_, err := tx.GetPolicy(ctx, jit.PolicyID("s1", "rg1", "westeurope", "other"))
	wantNotFound(t, "policy written by the discarded tx", err)
	_, err = tx.PolicyForVM(ctx, vmID("s1", "rg1", "other"))
	wantNotFound(t, "PolicyForVM of the discarded tx's policy", err)
	rs, err := tx.ListRequests(ctx, p.ID, 0)
	if err != nil || len(rs) != 1 {
		t.Errorf("requests after the discarded tx: %d, %v; want 1", len(rs), err)
	}
	g, err := tx.GetGrant(ctx, "g1")
	if err != nil || g.Status != jit.StatusInitiated {
		t.Errorf("grant g1 after the discarded tx: %s, %v", g.Status, err)
	}
	_, err = tx.GetGrant(ctx, "g2")
	wantNotFound(t, "grant inserted by the discarded tx", err)
	if gs, err := tx.DueGrants(ctx, t0.Add(10*time.Hour), 0); err != nil || len(gs) != 1 {
		t.Errorf("DueGrants after the discarded tx = %q, %v", grantIDs(gs), err)
	}
}

// mutateAll changes every kind of row, checking that the tx sees its own writes.
func mutateAll(t *testing.T, ctx context.Context, tx jit.Tx, p jit.Policy, vm string) error {
	if err := tx.PutObject(ctx, "counter", "c", 2); err != nil {
		return err
	}
	if err := tx.PutObject(ctx, "counter", "new", 1); err != nil {
		return err
	}
	if err := tx.DeleteObject(ctx, "counter", "keep"); err != nil {
		return err
	}
	if err := tx.DeletePolicy(ctx, p.ID); err != nil {
		return err
	}
	other := vmID("s1", "rg1", "other")
	if err := tx.PutPolicy(ctx, policy("s1", "rg1", "westeurope", "other", other, vm)); err != nil {
		return err
	}
	if err := tx.InsertRequest(ctx, request("r2", p.ID, t0.Add(time.Hour), grant(t, "g2", p.ID, vm, 22, t0, t0.Add(2*time.Hour)))); err != nil {
		return err
	}
	g, err := tx.GetGrant(ctx, "g1")
	if err != nil {
		return err
	}
	if g, err = g.End(jit.ReasonUserRequested, t0); err != nil {
		return err
	}
	if err := tx.UpdateGrant(ctx, g); err != nil {
		return err
	}
	var n int
	if err := tx.GetObject(ctx, "counter", "c", &n); err != nil || n != 2 {
		t.Errorf("tx does not see its own write: %d, %v", n, err)
	}
	if got, err := tx.PolicyForVM(ctx, vm); err != nil || got.Name != "other" {
		t.Errorf("tx does not see its own policy: %s, %v", got.ID, err)
	}
	if gs, err := tx.DueGrants(ctx, t0.Add(10*time.Hour), 0); err != nil || len(gs) != 1 || gs[0].ID != "g2" {
		t.Errorf("tx does not see its own grants: %q, %v", grantIDs(gs), err)
	}
	return nil
}

func testRollback(t *testing.T, s Store) {
	p, vm := seed(t, s)
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx jit.Tx) error {
		if err := mutateAll(t, ctx, tx, p, vm); err != nil {
			return err
		}
		return fmt.Errorf("late failure: %w", boom)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx returned %v, want fn's error", err)
	}
	checkSeed(t, s, p, vm)
}

func testRollbackOnPanic(t *testing.T, s Store) {
	p, vm := seed(t, s)
	ctx := context.Background()
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the panic to propagate", r)
			}
		}()
		_ = s.InTx(ctx, func(tx jit.Tx) error {
			if err := mutateAll(t, ctx, tx, p, vm); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	checkSeed(t, s, p, vm)
	// The store is still usable after a panic.
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error { return tx.PutObject(ctx, "counter", "after", 1) })
}

func testObjectTxRollback(t *testing.T, s Store) {
	ctx := context.Background()
	objTx(t, s, func(ctx context.Context, o store.Objects) error { return o.PutObject(ctx, "k", "a", doc{N: 1}) })
	boom := errors.New("boom")
	err := s.ObjectTx(ctx, func(o store.Objects) error {
		if err := o.PutObject(ctx, "k", "a", doc{N: 2}); err != nil {
			return err
		}
		if err := o.PutObject(ctx, "k", "b", doc{N: 2}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("ObjectTx returned %v, want fn's error", err)
	}
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		var d doc
		if err := o.GetObject(ctx, "k", "a", &d); err != nil || d.N != 1 {
			t.Errorf("k/a after rollback = %+v, %v", d, err)
		}
		wantNotFound(t, "k/b after rollback", o.GetObject(ctx, "k", "b", &d))
		return nil
	})
}

func testCancelledContext(t *testing.T, s Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.InTx(ctx, func(tx jit.Tx) error { return tx.PutObject(ctx, "k", "x", 1) })
	if err == nil {
		t.Fatal("InTx with a cancelled context succeeded")
	}
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		var n int
		wantNotFound(t, "write under a cancelled context", o.GetObject(ctx, "k", "x", &n))
		return nil
	})
}

// testConcurrentCounter: read-modify-write from many goroutines at once
// loses no update and fails none (no busy or serialisation errors escape).
func testConcurrentCounter(t *testing.T, s Store) {
	const goroutines, each = 50, 10
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for i := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				incr := func(o store.Objects) error {
					var n int
					if err := o.GetObject(ctx, "counter", "c", &n); err != nil && !errors.Is(err, store.ErrNotFound) {
						return err
					}
					return o.PutObject(ctx, "counter", "c", n+1)
				}
				var err error
				if (i+j)%2 == 0 {
					err = s.InTx(ctx, func(tx jit.Tx) error { return incr(tx) })
				} else {
					err = s.ObjectTx(ctx, incr)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent increment: %v", err)
	}
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		var n int
		if err := o.GetObject(ctx, "counter", "c", &n); err != nil {
			return err
		}
		if n != goroutines*each {
			t.Errorf("counter = %d, want %d", n, goroutines*each)
		}
		return nil
	})
}

// testConcurrentRequests: the request path's transaction (read the policy,
// list active grants, insert) from many goroutines.
func testConcurrentRequests(t *testing.T, s Store) {
	const goroutines, each = 20, 5
	vm := vmID("s1", "rg1", "a")
	p := policy("s1", "rg1", "westeurope", "p", vm)
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error { return tx.PutPolicy(ctx, p) })
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for i := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				id := fmt.Sprintf("r%d-%d", i, j)
				start := t0.Add(time.Duration(i*each+j) * time.Second)
				errs <- s.InTx(ctx, func(tx jit.Tx) error {
					if _, err := tx.GetPolicy(ctx, p.ID); err != nil {
						return err
					}
					if _, err := tx.ListGrants(ctx, jit.GrantFilter{VMID: vm, ActiveOnly: true}); err != nil {
						return err
					}
					return tx.InsertRequest(ctx, request(id, p.ID, start, grant(t, "g"+id, p.ID, vm, 22, start, start.Add(time.Hour))))
				})
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent request: %v", err)
		}
	}
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		rs, err := tx.ListRequests(ctx, p.ID, 0)
		if err != nil {
			return err
		}
		if len(rs) != goroutines*each {
			t.Errorf("%d requests stored, want %d", len(rs), goroutines*each)
		}
		gs, err := tx.ListGrants(ctx, jit.GrantFilter{VMID: vm, ActiveOnly: true})
		if err != nil {
			return err
		}
		if len(gs) != goroutines*each {
			t.Errorf("%d active grants, want %d", len(gs), goroutines*each)
		}
		return nil
	})
}

// ---- read-only transactions ----

func readTx(t *testing.T, s Store, fn func(ctx context.Context, tx jit.Tx) error) {
	t.Helper()
	ctx := context.Background()
	if err := s.ReadTx(ctx, func(tx jit.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("ReadTx: %v", err)
	}
}

func objReadTx(t *testing.T, s Store, fn func(ctx context.Context, o store.Objects) error) {
	t.Helper()
	ctx := context.Background()
	if err := s.ObjectReadTx(ctx, func(o store.Objects) error { return fn(ctx, o) }); err != nil {
		t.Fatalf("ObjectReadTx: %v", err)
	}
}

// testReadTxSeesCommitted: ReadTx and ObjectReadTx see everything
// committed before they began, through every read of jit.Tx.
func testReadTxSeesCommitted(t *testing.T, s Store) {
	p, vm := seed(t, s)
	readTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		checkSeedIn(t, ctx, tx, p, vm)
		ps, err := tx.ListPolicies(ctx, "/", "")
		if err != nil || len(ps) != 1 || ps[0].ID != p.ID {
			t.Errorf("ListPolicies in ReadTx = %d policies, %v; want [%s]", len(ps), err, p.ID)
		}
		gs, err := tx.ListGrants(ctx, jit.GrantFilter{VMID: vm, ActiveOnly: true})
		if err != nil || !slices.Equal(grantIDs(gs), []string{"g1"}) {
			t.Errorf("ListGrants in ReadTx = %q, %v; want [g1]", grantIDs(gs), err)
		}
		if next, ok, err := tx.NextEndTime(ctx); err != nil || !ok || !next.Equal(t0.Add(time.Hour)) {
			t.Errorf("NextEndTime in ReadTx = %v, %v, %v; want %v", next, ok, err, t0.Add(time.Hour))
		}
		return nil
	})
	objReadTx(t, s, func(ctx context.Context, o store.Objects) error {
		var n int
		if err := o.GetObject(ctx, "counter", "keep", &n); err != nil || n != 7 {
			t.Errorf("ObjectReadTx: counter keep = %d, %v; want 7", n, err)
		}
		var keys []string
		if err := o.ListObjects(ctx, "counter", func(key string, _ []byte) error {
			keys = append(keys, key)
			return nil
		}); err != nil {
			return err
		}
		if want := []string{"c", "keep"}; !slices.Equal(keys, want) {
			t.Errorf("ObjectReadTx: counter keys = %q, want %q", keys, want)
		}
		return nil
	})
	// A read-only transaction is not a stale cache: what commits after one
	// ended is seen by the next.
	objTx(t, s, func(ctx context.Context, o store.Objects) error { return o.PutObject(ctx, "counter", "c", 5) })
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error { return tx.DeletePolicy(ctx, p.ID) })
	readTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		var n int
		if err := tx.GetObject(ctx, "counter", "c", &n); err != nil || n != 5 {
			t.Errorf("ReadTx after a later commit: counter c = %d, %v; want 5", n, err)
		}
		_, err := tx.GetPolicy(ctx, p.ID)
		wantNotFound(t, "ReadTx after the policy was deleted", err)
		return nil
	})
	objReadTx(t, s, func(ctx context.Context, o store.Objects) error {
		var n int
		if err := o.GetObject(ctx, "counter", "c", &n); err != nil || n != 5 {
			t.Errorf("ObjectReadTx after a later commit: counter c = %d, %v; want 5", n, err)
		}
		return nil
	})
}

// testReadTxSnapshot: a ReadTx reads one snapshot. A write that commits
// while it runs (on backends where it can) is not seen by its later reads;
// on backends where the write waits for the ReadTx, it is not seen either.
func testReadTxSnapshot(t *testing.T, s Store) {
	objTx(t, s, func(ctx context.Context, o store.Objects) error { return o.PutObject(ctx, "counter", "c", 1) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var writeDone chan error
	err := s.ReadTx(ctx, func(tx jit.Tx) error {
		var n int
		if err := tx.GetObject(ctx, "counter", "c", &n); err != nil {
			return err
		}
		if n != 1 {
			t.Errorf("first read: counter c = %d, want 1", n)
		}
		if writeDone == nil { // a retried fn does not write again
			writeDone = make(chan error, 1)
			go func() {
				writeDone <- s.ObjectTx(ctx, func(o store.Objects) error { return o.PutObject(ctx, "counter", "c", 2) })
			}()
			select {
			case err := <-writeDone:
				// The write committed while this ReadTx runs.
				writeDone <- err
			case <-time.After(200 * time.Millisecond):
				// The backend queues the write behind this ReadTx.
			}
		}
		if err := tx.GetObject(ctx, "counter", "c", &n); err != nil {
			return err
		}
		if n != 1 {
			t.Errorf("second read in the same ReadTx: counter c = %d, want 1 (a write committed meanwhile is not part of its snapshot)", n)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ReadTx: %v", err)
	}
	if err := <-writeDone; err != nil {
		t.Fatalf("write beside the ReadTx: %v", err)
	}
	objReadTx(t, s, func(ctx context.Context, o store.Objects) error {
		var n int
		if err := o.GetObject(ctx, "counter", "c", &n); err != nil || n != 2 {
			t.Errorf("after the write: counter c = %d, %v; want 2", n, err)
		}
		return nil
	})
}

// tryWrites attempts every kind of write, each on its own, and reports
// their errors: a backend may refuse them in a read-only transaction, or
// accept them and never commit them.
func tryWrites(t *testing.T, ctx context.Context, tx jit.Tx, p jit.Policy, vm string) []error {
	g1, err := tx.GetGrant(ctx, "g1")
	if err == nil {
		g1, err = g1.End(jit.ReasonUserRequested, t0)
	}
	if err != nil {
		t.Errorf("reading g1 in ReadTx: %v", err)
	}
	other := vmID("s1", "rg1", "other")
	return []error{
		tx.PutObject(ctx, "counter", "c", 2),
		tx.PutObject(ctx, "counter", "new", 1),
		tx.DeleteObject(ctx, "counter", "keep"),
		tx.DeletePolicy(ctx, p.ID),
		tx.PutPolicy(ctx, policy("s1", "rg1", "westeurope", "other", other, vm)),
		tx.InsertRequest(ctx, request("r2", p.ID, t0.Add(time.Hour), grant(t, "g2", p.ID, vm, 22, t0, t0.Add(2*time.Hour)))),
		tx.UpdateGrant(ctx, g1),
	}
}

// testReadTxKeepsNoWrites: whatever a ReadTx's fn writes is never kept,
// whether fn then fails, succeeds or panics.
func testReadTxKeepsNoWrites(t *testing.T, s Store) {
	p, vm := seed(t, s)
	ctx := context.Background()
	boom := errors.New("boom")

	err := s.ReadTx(ctx, func(tx jit.Tx) error {
		tryWrites(t, ctx, tx, p, vm)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("ReadTx whose fn failed returned %v, want fn's error", err)
	}
	checkSeed(t, s, p, vm)
	if t.Failed() {
		t.FailNow()
	}

	// fn ignores what its writes returned and succeeds: ReadTx may fail or
	// not, but still keeps nothing.
	var errs []error
	err = s.ReadTx(ctx, func(tx jit.Tx) error {
		errs = tryWrites(t, ctx, tx, p, vm)
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		if !errors.Is(errs[0], store.ErrReadOnly) {
			t.Logf("the first write refused in ReadTx (%v) does not wrap store.ErrReadOnly", errs[0])
		}
	}
	t.Logf("ReadTx with ignored writes returned %v", err)
	checkSeed(t, s, p, vm)
	if t.Failed() {
		t.FailNow()
	}

	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the panic to propagate", r)
			}
		}()
		_ = s.ReadTx(ctx, func(tx jit.Tx) error {
			tryWrites(t, ctx, tx, p, vm)
			panic("boom")
		})
	}()
	checkSeed(t, s, p, vm)
	// The store still reads and writes.
	readTx(t, s, func(ctx context.Context, tx jit.Tx) error {
		checkSeedIn(t, ctx, tx, p, vm)
		return nil
	})
	inTx(t, s, func(ctx context.Context, tx jit.Tx) error { return tx.PutObject(ctx, "counter", "after", 1) })
}

// testObjectReadTxKeepsNoWrites: ObjectReadTx likewise.
func testObjectReadTxKeepsNoWrites(t *testing.T, s Store) {
	objTx(t, s, func(ctx context.Context, o store.Objects) error {
		if err := o.PutObject(ctx, "k", "a", doc{N: 1}); err != nil {
			return err
		}
		return o.PutObject(ctx, "k", "d", doc{N: 4})
	})
	ctx := context.Background()
	write := func(o store.Objects) {
		_ = o.PutObject(ctx, "k", "a", doc{N: 2})
		_ = o.PutObject(ctx, "k", "b", doc{N: 2})
		_ = o.DeleteObject(ctx, "k", "d")
	}
	check := func(when string) {
		t.Helper()
		objTx(t, s, func(ctx context.Context, o store.Objects) error {
			var keys []string
			if err := o.ListObjects(ctx, "k", func(key string, body []byte) error {
				keys = append(keys, key+"="+string(body))
				return nil
			}); err != nil {
				return err
			}
			var a, d doc
			if err := o.GetObject(ctx, "k", "a", &a); err != nil || a.N != 1 {
				t.Errorf("%s: k/a = %+v, %v; want n 1", when, a, err)
			}
			if err := o.GetObject(ctx, "k", "d", &d); err != nil || d.N != 4 {
				t.Errorf("%s: k/d = %+v, %v; want n 4", when, d, err)
			}
			if len(keys) != 2 {
				t.Errorf("%s: objects of kind k = %q, want a and d only", when, keys)
			}
			return nil
		})
	}
	boom := errors.New("boom")
	if err := s.ObjectReadTx(ctx, func(o store.Objects) error { write(o); return boom }); !errors.Is(err, boom) {
		t.Errorf("ObjectReadTx whose fn failed returned %v, want fn's error", err)
	}
	check("after ObjectReadTx failed")
	err := s.ObjectReadTx(ctx, func(o store.Objects) error { write(o); return nil })
	t.Logf("ObjectReadTx with ignored writes returned %v", err)
	check("after ObjectReadTx succeeded")
}

func testReadTxCancelledContext(t *testing.T, s Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.ReadTx(ctx, func(jit.Tx) error { return nil }); err == nil {
		t.Error("ReadTx with a cancelled context succeeded")
	}
	if err := s.ObjectReadTx(ctx, func(store.Objects) error { return nil }); err == nil {
		t.Error("ObjectReadTx with a cancelled context succeeded")
	}
}

// testReadTxBesideInTx: read-only transactions started while a writing
// transaction is in progress (holding its writes, uncommitted) all finish,
// without deadlock, and none sees the uncommitted write. A backend may run
// them beside the writer or queue them behind it: the writer holds on
// until they are done or for a grace period, whichever comes first.
func testReadTxBesideInTx(t *testing.T, s Store) {
	const readers = 8
	const grace = 300 * time.Millisecond
	objTx(t, s, func(ctx context.Context, o store.Objects) error { return o.PutObject(ctx, "counter", "c", 1) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	started := make(chan struct{})
	var startOnce sync.Once
	readsDone := make(chan struct{})
	var released atomic.Bool
	writeErr := make(chan error, 1)
	go func() {
		writeErr <- s.InTx(ctx, func(tx jit.Tx) error {
			if err := tx.PutObject(ctx, "counter", "c", 2); err != nil {
				return err
			}
			startOnce.Do(func() { close(started) })
			select {
			case <-readsDone:
			case <-time.After(grace):
			case <-ctx.Done():
			}
			released.Store(true)
			return nil
		})
	}()
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("the writing transaction did not start within 5s")
	}

	type result struct {
		n      int
		before bool // finished while the writer still held its transaction open
		err    error
	}
	results := make(chan result, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := ReadCounter(ctx, s, i%2 == 1)
			results <- result{n: n, before: !released.Load(), err: err}
		}()
	}
	all := make(chan struct{})
	go func() {
		wg.Wait()
		close(readsDone)
		close(all)
	}()
	select {
	case <-all:
	case <-ctx.Done():
		t.Fatalf("%d read-only transactions started beside an InTx in progress did not all finish within 5s (deadlock?)", readers)
	}
	var werr error
	select {
	case werr = <-writeErr:
	case <-ctx.Done():
		t.Fatal("the writing transaction did not finish within 5s of the reads (deadlock?)")
	}
	if werr != nil {
		t.Fatalf("InTx beside read-only transactions: %v", werr)
	}
	close(results)
	beside := 0
	for r := range results {
		switch {
		case r.err != nil:
			t.Errorf("read-only transaction beside an InTx: %v", r.err)
		case r.before && r.n != 1:
			t.Errorf("a read-only transaction that ended before the InTx committed saw counter c = %d, want 1 (an uncommitted write)", r.n)
		case r.n != 1 && r.n != 2:
			t.Errorf("read-only transaction saw counter c = %d, want 1 or 2", r.n)
		}
		if r.before {
			beside++
		}
	}
	t.Logf("%d of %d read-only transactions finished while the InTx was open", beside, readers)
	objReadTx(t, s, func(ctx context.Context, o store.Objects) error {
		var n int
		if err := o.GetObject(ctx, "counter", "c", &n); err != nil || n != 2 {
			t.Errorf("after the InTx committed: counter c = %d, %v; want 2", n, err)
		}
		return nil
	})
}
