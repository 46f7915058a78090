package access

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/resource"
	"github.com/drawbridge/drawbridge/internal/store"
)

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
