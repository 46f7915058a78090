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
	"sort"
	"testing"
	"time"

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
