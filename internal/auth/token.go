// Package auth owns who a caller is: drawbridge's bearer API tokens (user
// and agent tokens, stored only as hashes), verification of OIDC ID tokens
// against an issuer's published keys, and a per-source limiter for failed
// authentications. It answers "who is this" as an rbac.Principal; what the
// principal may do is rbac's question.
//
// Token and limiter code is pure (time is passed in). The OIDC verifier does
// network I/O to fetch the issuer's discovery document and keys.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// Principal is who a caller is (re-exported so callers need not import rbac).
type Principal = rbac.Principal

// ErrUnauthenticated is wrapped by every "who you say you are was not
// accepted" error (bad, expired, revoked or forged credentials); the API
// maps it to 401 and counts it against the source's failure limit.
var ErrUnauthenticated = errors.New("unauthenticated")

// ErrWrongVM is wrapped when an agent token is used for a VM or an operation
// other than its own; the API maps it to 403.
var ErrWrongVM = errors.New("agent token not valid for this VM")

// TokenPrefix starts every drawbridge API token, so that tokens are easy to
// recognise (secret scanners, logs) and to tell apart from OIDC JWTs.
const TokenPrefix = "dbt_"

// tokenBytes is the number of random bytes in a token: 256 bits.
const tokenBytes = 32

// Kind says what a token is for.
type Kind string

const (
	KindUser  Kind = "user"  // acts as its principal, subject to RBAC
	KindAgent Kind = "agent" // a host agent: reads and reports for one VM only
)

// Token is what the store keeps about an API token. The plaintext is never
// stored; Hash is its hex SHA-256. A zero ExpiresAt never expires; a zero
// RevokedAt is not revoked.
type Token struct {
	ID        string    `json:"id"`
	Principal string    `json:"principal"`
	Hash      string    `json:"-"`
	Kind      Kind      `json:"kind"`
	VMID      string    `json:"vmId,omitempty"` // agent tokens only
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	RevokedAt time.Time `json:"revokedAt,omitzero"`
}

// NewToken returns a fresh random token and its hash. Show the plaintext to
// the user once; store only the hash.
func NewToken() (plaintext string, hash string) {
	b := make([]byte, tokenBytes)
	// crypto/rand.Read never fails (the runtime aborts if the system's
	// generator is unavailable), so there is no error to return.
	_, _ = rand.Read(b)
	plaintext = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return plaintext, HashToken(plaintext)
}

// HashToken returns the hex SHA-256 of a token's plaintext: the store's
// lookup key. A plain hash (not bcrypt) is enough because the token carries
// 256 random bits; nobody can guess it from its hash.
func HashToken(plaintext string) string {
	sum := sha256.Sum256([]byte(plaintext))
	return hex.EncodeToString(sum[:])
}

// LooksLikeToken reports whether s has the shape of a drawbridge API token
// (as opposed to an OIDC JWT), so the API can pick the right verifier.
func LooksLikeToken(s string) bool {
	rest, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok || len(rest) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(rest)
	return err == nil
}

// IssueParams describe a token to create.
type IssueParams struct {
	Principal string
	Kind      Kind          // default KindUser
	VMID      string        // required for agent tokens, forbidden for user tokens
	TTL       time.Duration // 0: never expires
}

// Issue creates a token record and its plaintext at time now. The record's
// ID is derived from the hash (its first 16 hex digits), so it is stable,
// shows nothing of the secret, and list/revoke can name it.
func Issue(p IssueParams, now time.Time) (plaintext string, rec Token, err error) {
	if p.Kind == "" {
		p.Kind = KindUser
	}
	rec = Token{Principal: strings.TrimSpace(p.Principal), Kind: p.Kind, VMID: p.VMID, CreatedAt: now.UTC()}
	if p.TTL < 0 {
		return "", Token{}, fmt.Errorf("expires: must not be negative, got %s", p.TTL)
	}
	if p.TTL > 0 {
		rec.ExpiresAt = rec.CreatedAt.Add(p.TTL)
	}
	if err := rec.validate(); err != nil {
		return "", Token{}, err
	}
	plaintext, rec.Hash = NewToken()
	rec.ID = rec.Hash[:16]
	return plaintext, rec, nil
}

func (t Token) validate() error {
	if t.Principal == "" {
		return errors.New("principal: must not be empty")
	}
	switch t.Kind {
	case KindUser:
		if t.VMID != "" {
			return errors.New("vmId: only agent tokens are bound to a VM")
		}
	case KindAgent:
		if t.VMID == "" {
			return errors.New("vmId: an agent token must name its VM")
		}
		if _, err := resource.Parse(t.VMID); err != nil {
			return fmt.Errorf("vmId: %w", err)
		}
	default:
		return fmt.Errorf("kind: must be %q or %q, not %q", KindUser, KindAgent, t.Kind)
	}
	return nil
}

// Matches reports, in constant time, whether plaintext is this token.
func (t Token) Matches(plaintext string) bool {
	got := HashToken(plaintext)
	return len(t.Hash) == len(got) && subtle.ConstantTimeCompare([]byte(t.Hash), []byte(got)) == 1
}

// Check says whether the token may be used at time now: not revoked, not
// expired (a token is expired from its ExpiresAt instant on). The error
// wraps ErrUnauthenticated and names the token and the reason.
func Check(rec Token, now time.Time) error {
	if !rec.RevokedAt.IsZero() && !now.Before(rec.RevokedAt) {
		return fmt.Errorf("%w: token %s was revoked at %s", ErrUnauthenticated, rec.ID, rec.RevokedAt.UTC().Format(time.RFC3339))
	}
	if !rec.ExpiresAt.IsZero() && !now.Before(rec.ExpiresAt) {
		return fmt.Errorf("%w: token %s expired at %s", ErrUnauthenticated, rec.ID, rec.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if err := rec.validate(); err != nil {
		return fmt.Errorf("%w: token %s is malformed: %v", ErrUnauthenticated, rec.ID, err)
	}
	return nil
}

// Authenticate checks a presented plaintext against the record the store
// found for HashToken(plaintext) at time now, and returns the principal.
// Agent tokens get no groups, so no RBAC assignment to a group reaches them.
func Authenticate(rec Token, plaintext string, now time.Time) (Principal, error) {
	if !rec.Matches(plaintext) {
		return Principal{}, fmt.Errorf("%w: token does not match", ErrUnauthenticated)
	}
	if err := Check(rec, now); err != nil {
		return Principal{}, err
	}
	return Principal{Name: rec.Principal}, nil
}

// MayActOnVM says whether a token may read the desired state of, and report
// observed state for, vmID (IDs compare case-insensitively). Only an agent
// token for that very VM may; user tokens use the RBAC-checked API instead.
func MayActOnVM(rec Token, vmID string) error {
	if rec.Kind != KindAgent {
		return fmt.Errorf("%w: token %s is a %s token, not an agent token", ErrWrongVM, rec.ID, rec.Kind)
	}
	want, err1 := resource.Parse(rec.VMID)
	got, err2 := resource.Parse(vmID)
	if err1 != nil || err2 != nil || !want.Equal(got) {
		return fmt.Errorf("%w: token %s belongs to VM %s, not %s", ErrWrongVM, rec.ID, rec.VMID, vmID)
	}
	return nil
}

// RequireUser refuses agent tokens on user API operations: an agent token
// can only read and report for its own VM, whatever roles its principal has.
func RequireUser(rec Token) error {
	if rec.Kind == KindAgent {
		return fmt.Errorf("%w: token %s is an agent token; it may only read and report for VM %s", ErrWrongVM, rec.ID, rec.VMID)
	}
	return nil
}
