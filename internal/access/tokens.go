package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/store"
)

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
