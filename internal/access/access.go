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
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/resource"
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

// ---- audit ----

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

// ---- tokens ----

// TokenInfo is a stored token: the record and the groups its principal is
// in (API tokens carry their groups, as OIDC ID tokens carry a claim).
type TokenInfo struct {
	auth.Token
	Groups []string `json:"groups,omitempty"`
}

// CreateToken issues a token and stores its hash, audited as actor.
func (s *Store) CreateToken(ctx context.Context, actor jit.Actor, p auth.IssueParams, groups []string) (string, TokenInfo, error) {
	plain, rec, err := auth.Issue(p, s.now())
	if err != nil {
		return "", TokenInfo{}, jit.NewFieldError(jit.ErrInvalid, fieldOf(err), "%v", err)
	}
	if rec.Kind == auth.KindAgent && len(groups) > 0 {
		return "", TokenInfo{}, jit.NewFieldError(jit.ErrInvalid, "groups", "agent tokens have no groups")
	}
	for i, g := range groups {
		if strings.TrimSpace(g) == "" {
			return "", TokenInfo{}, jit.NewFieldError(jit.ErrInvalid, fmt.Sprintf("groups[%d]", i), "group name must not be empty")
		}
	}
	tok := TokenInfo{Token: rec, Groups: groups}
	err = s.st.ObjectTx(ctx, func(o store.Objects) error {
		if err := o.PutObject(ctx, KindToken, tok.Hash, tok); err != nil {
			return err
		}
		return s.appendRecord(ctx, o, actor, OpTokenCreate, "/", fmt.Sprintf("token %s for %s (%s)", tok.ID, tok.Principal, tok.Kind), nil, tok)
	})
	if err != nil {
		return "", TokenInfo{}, err
	}
	return plain, tok, nil
}

func fieldOf(err error) string {
	f, _, ok := strings.Cut(err.Error(), ":")
	if !ok || strings.ContainsAny(f, " ") {
		return ""
	}
	return f
}

// ListTokens returns every token record (never a secret), oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]TokenInfo, error) {
	var out []TokenInfo
	err := s.st.ObjectReadTx(ctx, func(o store.Objects) error {
		var err error
		out, err = listTokens(ctx, o)
		return err
	})
	return out, err
}

func listTokens(ctx context.Context, o store.Objects) ([]TokenInfo, error) {
	var out []TokenInfo
	err := o.ListObjects(ctx, KindToken, func(key string, body []byte) error {
		var t TokenInfo
		if err := json.Unmarshal(body, &t); err != nil {
			return fmt.Errorf("token %s: %w", key, err)
		}
		t.Hash = key
		out = append(out, t)
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

// RevokeToken revokes the token with that ID (from token list), audited.
func (s *Store) RevokeToken(ctx context.Context, actor jit.Actor, id string) (TokenInfo, error) {
	out, err := objectTx(ctx, s.st, func(o store.Objects) (TokenInfo, error) {
		ts, err := listTokens(ctx, o)
		if err != nil {
			return TokenInfo{}, err
		}
		for _, t := range ts {
			if t.ID != id {
				continue
			}
			if !t.RevokedAt.IsZero() {
				return TokenInfo{}, jit.NewFieldError(jit.ErrConflict, "id", "token %s was already revoked at %s", id, t.RevokedAt.Format(time.RFC3339))
			}
			before := t
			t.RevokedAt = s.now().UTC()
			if err := o.PutObject(ctx, KindToken, t.Hash, t); err != nil {
				return TokenInfo{}, err
			}
			return t, s.appendRecord(ctx, o, actor, OpTokenRevoke, "/", fmt.Sprintf("token %s of %s", t.ID, t.Principal), before, t)
		}
		return TokenInfo{}, jit.NewFieldError(jit.ErrNotFound, "id", "no token with ID %q", id)
	})
	if err == nil {
		s.changed() // cached lookups of the token are stale now
	}
	return out, err
}

// LookupToken finds the token record for a presented plaintext and
// authenticates it (auth.Authenticate: match, not revoked, not expired).
func (s *Store) LookupToken(ctx context.Context, plaintext string) (auth.Token, rbac.Principal, error) {
	hash := auth.HashToken(plaintext)
	t, err := s.storedToken(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return auth.Token{}, rbac.Principal{}, fmt.Errorf("%w: unknown token", auth.ErrUnauthenticated)
	} else if err != nil {
		return auth.Token{}, rbac.Principal{}, err
	}
	t.Hash = hash
	p, err := auth.Authenticate(t.Token, plaintext, s.now())
	if err == nil && t.Kind == auth.KindUser {
		p.Groups = t.Groups
	}
	return t.Token, p, err
}

// storedToken reads the token stored under hash. Every request
// authenticates, so found tokens are cached like the policy: a local
// change (a revocation through this Store) is seen at once, one made
// through another replica within policyTTL. Expiry is not cached: the
// caller checks it on every use. Unknown hashes are not cached, so a
// token created on another replica works at once.
func (s *Store) storedToken(ctx context.Context, hash string) (TokenInfo, error) {
	s.mu.Lock()
	c, ok := s.tokens[hash]
	gen := s.gen
	s.mu.Unlock()
	if ok && c.gen == gen && s.now().Sub(c.at) < policyTTL {
		t := c.info
		t.Groups = slices.Clone(t.Groups)
		return t, nil
	}
	at := s.now()
	var t TokenInfo
	err := s.st.ObjectReadTx(ctx, func(o store.Objects) error {
		return o.GetObject(ctx, KindToken, hash, &t)
	})
	if err != nil {
		return TokenInfo{}, err
	}
	s.mu.Lock()
	if s.tokens == nil || len(s.tokens) >= maxCachedTokens {
		s.tokens = map[string]cachedToken{}
	}
	s.tokens[hash] = cachedToken{info: t, gen: gen, at: at}
	s.mu.Unlock()
	t.Groups = slices.Clone(t.Groups)
	return t, nil
}

// ---- roles and assignments ----

func loadPolicyState(ctx context.Context, o store.Objects) ([]rbac.RoleDefinition, []rbac.Assignment, error) {
	var roles []rbac.RoleDefinition
	err := o.ListObjects(ctx, KindRole, func(key string, body []byte) error {
		var r rbac.RoleDefinition
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("role %s: %w", key, err)
		}
		roles = append(roles, r)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	var as []rbac.Assignment
	err = o.ListObjects(ctx, KindAssignment, func(key string, body []byte) error {
		var a assignmentJSON
		if err := json.Unmarshal(body, &a); err != nil {
			return fmt.Errorf("assignment %s: %w", key, err)
		}
		ra, err := a.assignment()
		if err != nil {
			return fmt.Errorf("assignment %s: %w", key, err)
		}
		as = append(as, ra)
		return nil
	})
	return roles, as, err
}

// assignmentJSON is an assignment as stored and sent (scope as text).
type assignmentJSON struct {
	ID            string             `json:"id"`
	Role          string             `json:"roleDefinitionName"`
	Principal     string             `json:"principalName"`
	PrincipalType rbac.PrincipalType `json:"principalType"`
	Scope         string             `json:"scope"`
}

func (a assignmentJSON) assignment() (rbac.Assignment, error) {
	scope, err := resource.Parse(a.Scope)
	if err != nil {
		return rbac.Assignment{}, jit.NewFieldError(jit.ErrInvalid, "scope", "%v", err)
	}
	return rbac.Assignment{ID: a.ID, Role: a.Role, Principal: a.Principal, PrincipalType: a.PrincipalType, Scope: scope}, nil
}

func toJSON(a rbac.Assignment) assignmentJSON {
	return assignmentJSON{ID: a.ID, Role: a.Role, Principal: a.Principal, PrincipalType: a.PrincipalType, Scope: a.Scope.String()}
}

// Policy returns the authorization policy: built-in roles plus stored
// roles and assignments. It is cached; local changes rebuild it at once.
func (s *Store) Policy(ctx context.Context) (*rbac.Policy, error) {
	s.mu.Lock()
	if s.cached != nil && s.built == s.gen && s.now().Sub(s.at) < policyTTL {
		p := s.cached
		s.mu.Unlock()
		return p, nil
	}
	gen := s.gen
	s.mu.Unlock()
	var p *rbac.Policy
	err := s.st.ObjectReadTx(ctx, func(o store.Objects) error {
		roles, as, err := loadPolicyState(ctx, o)
		if err != nil {
			return err
		}
		p, err = rbac.NewPolicy(roles, as)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cached, s.built, s.at = p, gen, s.now()
	s.mu.Unlock()
	return p, nil
}

// AuthorizeOperation implements the API's Authorizer.
func (s *Store) AuthorizeOperation(p rbac.Principal, op rbac.Operation, target resource.ID) error {
	pol, err := s.Policy(context.Background())
	if err != nil {
		return fmt.Errorf("loading roles: %w", err)
	}
	return pol.AuthorizeOperation(p, op, target)
}

// CreateRole stores a custom role definition (validated, and checked
// against the built-in and stored roles for name and ID clashes).
func (s *Store) CreateRole(ctx context.Context, actor jit.Actor, r rbac.RoleDefinition) (rbac.RoleDefinition, error) {
	if err := r.Validate(); err != nil {
		return r, jit.NewFieldError(jit.ErrInvalid, "", "%v", err)
	}
	r.IsCustom = true
	if r.ID == "" {
		r.ID = newUUID()
	}
	err := s.st.ObjectTx(ctx, func(o store.Objects) error {
		roles, as, err := loadPolicyState(ctx, o)
		if err != nil {
			return err
		}
		if _, err := rbac.NewPolicy(append(roles, r), as); err != nil {
			return jit.NewFieldError(jit.ErrConflict, "Name", "%v", err)
		}
		if err := o.PutObject(ctx, KindRole, strings.ToLower(r.Name), r); err != nil {
			return err
		}
		return s.appendRecord(ctx, o, actor, OpRoleCreate, "/", "role "+r.Name, nil, r)
	})
	if err == nil {
		s.changed()
	}
	return r, err
}

// Assign stores a role assignment after checking it against the roles.
func (s *Store) Assign(ctx context.Context, actor jit.Actor, a rbac.Assignment) (rbac.Assignment, error) {
	if err := a.Validate(); err != nil {
		return a, jit.NewFieldError(jit.ErrInvalid, fieldOf(err), "%v", err)
	}
	if a.ID == "" {
		a.ID = newUUID()
	}
	out, err := objectTx(ctx, s.st, func(o store.Objects) (rbac.Assignment, error) {
		a := a // each run starts from the caller's value
		roles, as, err := loadPolicyState(ctx, o)
		if err != nil {
			return a, err
		}
		pol, err := rbac.NewPolicy(roles, append(slices.Clip(as), a))
		if err != nil {
			msg := err.Error()
			field := "roleDefinitionName"
			if strings.Contains(msg, "scope:") {
				field = "scope"
			}
			return a, jit.NewFieldError(jit.ErrInvalid, field, "%s", msg)
		}
		// The canonical spelling (a role may be named by its ID), before
		// comparing with the stored assignments, which have it.
		a.Role = pol.Role(a.Role).Name
		for _, have := range as {
			if strings.EqualFold(have.Role, a.Role) && strings.EqualFold(have.Principal, a.Principal) && have.PrincipalType == a.PrincipalType && have.Scope.Equal(a.Scope) {
				return a, jit.NewFieldError(jit.ErrConflict, "", "%s already exists (assignment %s)", a, have.ID)
			}
		}
		if err := o.PutObject(ctx, KindAssignment, a.ID, toJSON(a)); err != nil {
			return a, err
		}
		return a, s.appendRecord(ctx, o, actor, OpRoleAssign, a.Scope.String(), a.String(), nil, toJSON(a))
	})
	if err == nil {
		s.changed()
		a = out
	}
	return a, err
}

// GetAssignment returns one assignment.
func (s *Store) GetAssignment(ctx context.Context, id string) (rbac.Assignment, error) {
	var a assignmentJSON
	err := s.st.ObjectReadTx(ctx, func(o store.Objects) error { return o.GetObject(ctx, KindAssignment, id, &a) })
	if errors.Is(err, store.ErrNotFound) {
		return rbac.Assignment{}, jit.NewFieldError(jit.ErrNotFound, "id", "no role assignment with ID %q", id)
	} else if err != nil {
		return rbac.Assignment{}, err
	}
	return a.assignment()
}

// Unassign deletes an assignment, audited.
func (s *Store) Unassign(ctx context.Context, actor jit.Actor, id string) error {
	err := s.st.ObjectTx(ctx, func(o store.Objects) error {
		var a assignmentJSON
		if err := o.GetObject(ctx, KindAssignment, id, &a); errors.Is(err, store.ErrNotFound) {
			return jit.NewFieldError(jit.ErrNotFound, "id", "no role assignment with ID %q", id)
		} else if err != nil {
			return err
		}
		if err := o.DeleteObject(ctx, KindAssignment, id); err != nil {
			return err
		}
		return s.appendRecord(ctx, o, actor, OpRoleUnassign, a.Scope, "assignment "+id, a, nil)
	})
	if err == nil {
		s.changed()
	}
	return err
}

// Roles returns built-in and custom roles; Assignments every assignment.
func (s *Store) Roles(ctx context.Context) ([]rbac.RoleDefinition, error) {
	p, err := s.Policy(ctx)
	if err != nil {
		return nil, err
	}
	return p.Roles(), nil
}

// Assignments returns every stored assignment, by ID.
func (s *Store) Assignments(ctx context.Context) ([]rbac.Assignment, error) {
	var as []rbac.Assignment
	err := s.st.ObjectReadTx(ctx, func(o store.Objects) error {
		var err error
		_, as, err = loadPolicyState(ctx, o)
		return err
	})
	return as, err
}

// ---- bootstrap ----

// BootstrapPrincipal is the principal of the first administrator token.
const BootstrapPrincipal = "admin"

// Bootstrap, on the first start of a store, issues an administrator token
// (principal "admin", Owner at "/"), writes it to path readable only by its
// owner (0600, created exclusively), and marks the store so it never
// happens again. It returns the plaintext when it issued one ("" after).
func (s *Store) Bootstrap(ctx context.Context, path string) (string, error) {
	var marker struct{ Path string }
	err := s.st.ObjectTx(ctx, func(o store.Objects) error { return o.GetObject(ctx, KindBootstrap, "done", &marker) })
	if err == nil {
		return "", nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	actor := jit.Actor{Principal: jit.SystemPrincipal}
	plain, tok, err := auth.Issue(auth.IssueParams{Principal: BootstrapPrincipal}, s.now())
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("admin token file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("admin token file: %w (remove it, or point --admin-token-file elsewhere)", err)
	}
	if _, err := f.WriteString(plain + "\n"); err != nil {
		f.Close()
		return "", fmt.Errorf("admin token file: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("admin token file: %w", err)
	}
	a := rbac.Assignment{ID: newUUID(), Role: rbac.RoleOwner, Principal: BootstrapPrincipal, PrincipalType: rbac.PrincipalUser, Scope: resource.Root}
	err = s.st.ObjectTx(ctx, func(o store.Objects) error {
		if err := o.PutObject(ctx, KindToken, tok.Hash, tok); err != nil {
			return err
		}
		if err := o.PutObject(ctx, KindAssignment, a.ID, toJSON(a)); err != nil {
			return err
		}
		if err := o.PutObject(ctx, KindBootstrap, "done", struct{ Path string }{path}); err != nil {
			return err
		}
		for _, r := range []struct {
			op, detail string
			after      any
		}{
			{OpTokenCreate, "bootstrap administrator token " + tok.ID + " written to " + path, tok},
			{OpRoleAssign, a.String(), toJSON(a)},
		} {
			if err := s.appendRecord(ctx, o, actor, r.op, "/", r.detail, nil, r.after); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		os.Remove(path)
		return "", err
	}
	s.changed()
	return plain, nil
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
