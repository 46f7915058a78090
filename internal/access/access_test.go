package access_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/resource"
	"github.com/drawbridge/drawbridge/internal/store"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
	"github.com/drawbridge/drawbridge/internal/store/storetest"
)

// countingStore counts the object transactions of each kind.
type countingStore struct {
	*memstore.Store
	writes, reads atomic.Int64
}

func (s *countingStore) ObjectTx(ctx context.Context, fn func(store.Objects) error) error {
	s.writes.Add(1)
	return s.Store.ObjectTx(ctx, fn)
}

func (s *countingStore) ObjectReadTx(ctx context.Context, fn func(store.Objects) error) error {
	s.reads.Add(1)
	return s.Store.ObjectReadTx(ctx, fn)
}

// TestLookupsUseReadTx: token lookup (every authenticated call), the
// authorization policy and the listings run read-only transactions, never
// a writing one; changes still write. The memstore refuses writes in a
// read-only transaction, so a lookup that wrote would fail here.
func TestLookupsUseReadTx(t *testing.T) {
	st := &countingStore{Store: memstore.New()}
	acc := access.New(st, nil)
	ctx := context.Background()
	admin := jit.Actor{Principal: "admin"}
	plain, tok, err := acc.CreateToken(ctx, admin, auth.IssueParams{Principal: "alice"}, []string{"ops"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := acc.Assign(ctx, admin, rbac.Assignment{Role: rbac.RoleReader, Principal: "alice", PrincipalType: rbac.PrincipalUser, Scope: resource.Root})
	if err != nil {
		t.Fatal(err)
	}
	if st.writes.Load() != 2 {
		t.Errorf("CreateToken and Assign ran %d writing transactions, want 2", st.writes.Load())
	}
	reads := []struct {
		name string
		fn   func() error
	}{
		{"LookupToken", func() error {
			got, p, err := acc.LookupToken(ctx, plain)
			if err == nil && (got.ID != tok.ID || p.Name != "alice") {
				t.Errorf("LookupToken = %s, %+v; want token %s of alice", got.ID, p, tok.ID)
			}
			return err
		}},
		{"ListTokens", func() error { _, err := acc.ListTokens(ctx); return err }},
		{"Policy", func() error { _, err := acc.Policy(ctx); return err }},
		{"GetAssignment", func() error { _, err := acc.GetAssignment(ctx, a.ID); return err }},
		{"Assignments", func() error { _, err := acc.Assignments(ctx); return err }},
		{"Audit", func() error {
			recs, err := acc.Audit(ctx, auditstore.Filter{})
			if err == nil && len(recs) != 2 {
				t.Errorf("Audit = %d records, want 2", len(recs))
			}
			return err
		}},
		{"VerifyAudit", func() error {
			rep, err := acc.VerifyAudit(ctx)
			if err == nil && !rep.OK {
				t.Errorf("VerifyAudit = %+v", rep)
			}
			return err
		}},
	}
	for _, r := range reads {
		w0, r0 := st.writes.Load(), st.reads.Load()
		if err := r.fn(); err != nil {
			t.Errorf("%s: %v", r.name, err)
			continue
		}
		if w := st.writes.Load() - w0; w != 0 {
			t.Errorf("%s ran %d writing transactions, want none", r.name, w)
		}
		if st.reads.Load() == r0 {
			t.Errorf("%s ran no read-only transaction", r.name)
		}
	}
	// An unknown token is refused without writing anything.
	w0 := st.writes.Load()
	if _, _, err := acc.LookupToken(ctx, "nope"); err == nil {
		t.Error("LookupToken of an unknown token succeeded")
	}
	if st.writes.Load() != w0 {
		t.Error("LookupToken of an unknown token ran a writing transaction")
	}
}

// Token lookups are cached like the authorization policy: a revocation
// through the same Store takes effect at once, one through another replica
// (another Store on the same database) within policyTTL (2s), and expiry
// is checked on every use, cached or not.
func TestTokenLookupCache(t *testing.T) {
	st := &countingStore{Store: memstore.New()}
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a, b := access.New(st, clock), access.New(st, clock)
	ctx := context.Background()
	admin := jit.Actor{Principal: "admin"}
	issue := func(p auth.IssueParams) (string, access.TokenInfo) {
		t.Helper()
		plain, tok, err := a.CreateToken(ctx, admin, p, nil)
		if err != nil {
			t.Fatal(err)
		}
		return plain, tok
	}
	lookup := func(s *access.Store, plain string) error {
		_, _, err := s.LookupToken(ctx, plain)
		return err
	}

	plain, tok := issue(auth.IssueParams{Principal: "alice"})
	// A token created through a replica works at once on another (unknown
	// tokens are not cached).
	reads := st.reads.Load()
	for range 3 {
		if err := lookup(b, plain); err != nil {
			t.Fatalf("fresh token refused: %v", err)
		}
	}
	if n := st.reads.Load() - reads; n != 1 {
		t.Errorf("3 lookups of one token read the store %d times, want 1 (cached)", n)
	}

	// Revoked through the other replica: still accepted from the cache for
	// less than 2s, refused after.
	if _, err := a.RevokeToken(ctx, admin, tok.ID); err != nil {
		t.Fatal(err)
	}
	if err := lookup(a, plain); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("token revoked through this Store accepted: %v", err)
	}
	now = now.Add(1900 * time.Millisecond)
	if err := lookup(b, plain); err != nil {
		t.Fatalf("within the 2s bound the other replica may still accept it, got %v", err)
	}
	now = now.Add(200 * time.Millisecond)
	if err := lookup(b, plain); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("token revoked through another replica still accepted after 2.1s: %v", err)
	}

	// Revoked through the Store that cached it: refused at once.
	plain2, tok2 := issue(auth.IssueParams{Principal: "bob"})
	if err := lookup(b, plain2); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RevokeToken(ctx, admin, tok2.ID); err != nil {
		t.Fatal(err)
	}
	if err := lookup(b, plain2); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("token revoked through this Store accepted from its cache: %v", err)
	}

	// Expiry is checked on every use, cached or not.
	plain3, _ := issue(auth.IssueParams{Principal: "carol", TTL: time.Minute})
	if err := lookup(b, plain3); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute + time.Millisecond)
	if err := lookup(b, plain3); !errors.Is(err, auth.ErrUnauthenticated) {
		t.Fatalf("expired token accepted from the cache: %v", err)
	}
}

// An assignment naming its role by ID is stored under the role's name, is
// a duplicate of the same assignment by name, and comes out the same when
// the store runs the transaction twice.
func TestAssignByRoleID(t *testing.T) {
	ctx := context.Background()
	admin := jit.Actor{Principal: "admin"}
	var readerID string
	for _, r := range rbac.BuiltinRoles() {
		if r.Name == rbac.RoleReader {
			readerID = r.ID
		}
	}
	for _, st := range []store.ObjectStore{memstore.New(), storetest.NewRerun(memstore.New())} {
		acc := access.New(st, nil)
		a, err := acc.Assign(ctx, admin, rbac.Assignment{Role: readerID, Principal: "alice", PrincipalType: rbac.PrincipalUser, Scope: resource.Root})
		if err != nil {
			t.Fatalf("%T: assign by role ID: %v", st, err)
		}
		if a.Role != rbac.RoleReader {
			t.Errorf("%T: stored role %q, want %q", st, a.Role, rbac.RoleReader)
		}
		_, err = acc.Assign(ctx, admin, rbac.Assignment{Role: rbac.RoleReader, Principal: "alice", PrincipalType: rbac.PrincipalUser, Scope: resource.Root})
		if !errors.Is(err, jit.ErrConflict) {
			t.Errorf("%T: same assignment by role name: %v, want a conflict", st, err)
		}
		_, err = acc.Assign(ctx, admin, rbac.Assignment{Role: readerID, Principal: "alice", PrincipalType: rbac.PrincipalUser, Scope: resource.Root})
		if !errors.Is(err, jit.ErrConflict) {
			t.Errorf("%T: same assignment by role ID again: %v, want a conflict", st, err)
		}
		if r, ok := st.(*storetest.Rerun); ok && r.Reruns() == 0 {
			t.Errorf("the rerun store ran no transaction twice")
		}
	}
}
