// Package access keeps drawbridge's identity and authorization state in the
// backends' generic object storage (store.Objects), so SQLite, PostgreSQL
// and the in-memory store all hold it unchanged:
//
//	auth.token       keyed by the token's SHA-256 (the plaintext is never stored)
//	rbac.role        custom role definitions, keyed by lower-cased name
//	rbac.assignment  role assignments, keyed by assignment ID
//	auth.bootstrap   marks that the first administrator token was issued
//
// Every change is audited in the transaction that makes it
// (auditstore.Append), and Record audits refused attempts in their own
// transaction. Store also implements the API's Authorizer with an
// rbac.Policy built from the built-in roles plus the stored ones.
package access

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Object kinds.
const (
	KindToken      = "auth.token"
	KindRole       = "rbac.role"
	KindAssignment = "rbac.assignment"
	KindBootstrap  = "auth.bootstrap"
)

// Audited operation names.
const (
	OpTokenCreate  = "token.create"
	OpTokenRevoke  = "token.revoke"
	OpRoleCreate   = "role.create"
	OpRoleAssign   = "role.assign"
	OpRoleUnassign = "role.unassign"
)

// Store is identity and authorization state over an object store.
type Store struct {
	st  store.ObjectStore
	now func() time.Time

	mu     sync.Mutex
	cached *rbac.Policy
	gen    uint64 // bumped by every local write; the cache is rebuilt after
	built  uint64
	at     time.Time
	tokens map[string]cachedToken // by token hash; see LookupToken
}

// policyTTL bounds how stale the cached policy may be when another replica
// changed roles (changes made through this Store take effect at once). The
// same bound holds for API tokens: one revoked through another replica
// stops working here within policyTTL.
const policyTTL = 2 * time.Second

// cachedToken is a stored token as read at `at`, while the local write
// generation was gen.
type cachedToken struct {
	info TokenInfo
	gen  uint64
	at   time.Time
}

// maxCachedTokens bounds the token cache; past it the cache starts again.
const maxCachedTokens = 10000

// New returns a Store over st; now is the clock (time.Now if nil).
func New(st store.ObjectStore, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{st: st, now: now}
}

// appendRecord appends the record of a succeeded change inside the
// change's transaction, so it commits or rolls back with the change.
func (s *Store) appendRecord(ctx context.Context, o store.Objects, actor jit.Actor, op, target, detail string, before, after any) error {
	rec, err := audit.NewSucceeded(s.now().UTC(), actor.Principal, actor.Address, op, target, detail, before, after)
	if err != nil {
		return err
	}
	_, err = auditstore.Append(ctx, o, rec)
	return err
}

func (s *Store) changed() {
	s.mu.Lock()
	s.gen++
	s.mu.Unlock()
}

// Record appends rec (a refused attempt, typically) in its own transaction.
func (s *Store) Record(ctx context.Context, rec audit.Record) error {
	if rec.Time.IsZero() {
		rec.Time = s.now().UTC()
	}
	return s.st.ObjectTx(ctx, func(o store.Objects) error {
		_, err := auditstore.Append(ctx, o, rec)
		return err
	})
}

// Audit lists records matching f, in log order.
func (s *Store) Audit(ctx context.Context, f auditstore.Filter) ([]audit.Record, error) {
	var out []audit.Record
	err := store.ScanReadTx(ctx, s.st, func(o store.Objects) error {
		var err error
		out, err = auditstore.List(ctx, o, f)
		return err
	})
	return out, err
}

// VerifyAudit checks the whole stored log.
func (s *Store) VerifyAudit(ctx context.Context) (auditstore.Report, error) {
	var rep auditstore.Report
	err := store.ScanReadTx(ctx, s.st, func(o store.Objects) error {
		var err error
		rep, err = auditstore.Verify(ctx, o)
		return err
	})
	return rep, err
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// objectTx runs fn in one writing transaction and returns the result of
// the run that committed (a backend may run fn more than once, so fn
// returns what it made rather than setting the caller's variables).
func objectTx[T any](ctx context.Context, st store.ObjectStore, fn func(store.Objects) (T, error)) (T, error) {
	var out T
	err := st.ObjectTx(ctx, func(o store.Objects) error {
		v, err := fn(o)
		if err == nil {
			out = v
		}
		return err
	})
	return out, err
}
