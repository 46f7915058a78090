package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// Identity is an authenticated caller: the principal, and the API token it
// presented (nil for OIDC or a local principal).
type Identity struct {
	Principal rbac.Principal
	Token     *auth.Token
}

// IdentityAuthenticator is an Authenticator that also says which token was
// used, so agent tokens can be held to their own VM.
type IdentityAuthenticator interface {
	Authenticator
	Identify(r *http.Request) (Identity, error)
}

// TokenLookup finds and checks an API token by its plaintext
// (access.Store.LookupToken).
type TokenLookup interface {
	LookupToken(ctx context.Context, plaintext string) (auth.Token, rbac.Principal, error)
}

// OIDCVerifier verifies an OIDC ID token (auth.OIDCVerifier).
type OIDCVerifier interface {
	Verify(ctx context.Context, rawIDToken string) (rbac.Principal, error)
}

// BearerAuthenticator accepts "Authorization: Bearer X" where X is a
// drawbridge API token (looked up by hash) or, when OIDC is configured, an
// OIDC ID token. Every failure wraps auth.ErrUnauthenticated.
type BearerAuthenticator struct {
	Tokens TokenLookup
	OIDC   OIDCVerifier // optional
}

// Authenticate implements Authenticator.
func (b BearerAuthenticator) Authenticate(r *http.Request) (rbac.Principal, error) {
	id, err := b.Identify(r)
	return id.Principal, err
}

// Identify implements IdentityAuthenticator.
func (b BearerAuthenticator) Identify(r *http.Request) (Identity, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return Identity{}, fmt.Errorf("%w: no credentials: send an API token or OIDC ID token as \"Authorization: Bearer TOKEN\"", auth.ErrUnauthenticated)
	}
	scheme, cred, ok := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" {
		return Identity{}, fmt.Errorf("%w: Authorization header: want \"Bearer TOKEN\"", auth.ErrUnauthenticated)
	}
	if auth.LooksLikeToken(cred) {
		if b.Tokens == nil {
			return Identity{}, fmt.Errorf("%w: API tokens are not accepted by this server", auth.ErrUnauthenticated)
		}
		tok, p, err := b.Tokens.LookupToken(r.Context(), cred)
		if err != nil {
			return Identity{}, err
		}
		return Identity{Principal: p, Token: &tok}, nil
	}
	if strings.HasPrefix(cred, auth.TokenPrefix) {
		return Identity{}, fmt.Errorf("%w: malformed API token", auth.ErrUnauthenticated)
	}
	if b.OIDC == nil {
		return Identity{}, fmt.Errorf("%w: not a drawbridge API token, and OIDC is not configured", auth.ErrUnauthenticated)
	}
	p, err := b.OIDC.Verify(r.Context(), cred)
	if err != nil {
		return Identity{}, err
	}
	return Identity{Principal: p}, nil
}

// Auditor appends audit records (refused attempts) in their own transaction.
type Auditor interface {
	Record(ctx context.Context, rec audit.Record) error
}

// reqInfo is what the request's pass through the API learns, for the
// audit record of a refusal.
type reqInfo struct {
	identity Identity
	actor    jit.Actor
	op       string
	target   string
	message  string
}

// recorder remembers the status and error message of a response.
type recorder struct {
	http.ResponseWriter
	status int
	info   *reqInfo
}

func (rw *recorder) WriteHeader(code int) {
	if rw.status == 0 {
		rw.status = code
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recorder) Write(b []byte) (int, error) {
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	return rw.ResponseWriter.Write(b)
}

func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

type identityKey struct{}

// serve authenticates the request (rate-limiting failures per source),
// runs the handler, and audits a refusal (any 4xx but 405 and 429),
// limiting refused calls per principal and source (RefusalLimiter).
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		s.route(w, r)
		return
	}
	info := &reqInfo{}
	rw := &recorder{ResponseWriter: w, info: info}
	if a := s.clientAddr(r); a.IsValid() {
		info.actor.Address = a.String()
	}
	id, err := s.identify(r)
	if err != nil {
		status, code := http.StatusUnauthorized, "AuthenticationFailed"
		switch {
		case errors.Is(err, auth.ErrUnauthenticated):
			if s.limitFailure(w, info.actor.Address) {
				return
			}
		case errors.Is(err, auth.ErrWrongVM):
			status, code = http.StatusForbidden, "AuthorizationFailed"
		default:
			status, code = http.StatusInternalServerError, "InternalError"
		}
		info.op = "authenticate"
		writeError(rw, status, code, "", err.Error())
		s.auditRefusal(r, rw)
		return
	}
	info.identity = id
	info.actor.Principal = id.Principal.Name
	info.actor.Groups = id.Principal.Groups
	ctx := context.WithValue(r.Context(), identityKey{}, info)
	ctx = jit.WithActor(ctx, info.actor)
	r = r.WithContext(ctx)
	now := time.Now()
	if !s.refusalsAllow(w, info.actor.Principal, info.actor.Address, now) {
		return
	}
	s.route(rw, r)
	if isRefusal(rw.status) {
		s.auditRefusal(r, rw)
		s.refused(info.actor.Principal, info.actor.Address, now)
	}
}

// limitFailure counts a failed authentication from addr, or, when addr has
// no failures left, answers 429 with Retry-After (unaudited: the flood is
// what is being limited) and reports true. Only failures are limited: a
// correct credential from the same address is always let through, so one
// caller's bad tokens cannot lock out everyone behind the same NAT or proxy.
// Guessing is no threat to 256-bit tokens or signed ID tokens; the limit
// keeps a flood of bad credentials out of the audit log.
func (s *Server) limitFailure(w http.ResponseWriter, addr string) bool {
	l := s.cfg.FailureLimiter
	if l == nil {
		return false
	}
	now := time.Now()
	if ok, wait := l.Allow(addr, now); !ok {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, "TooManyRequests", "", fmt.Sprintf("too many failed authentications from %s; retry in %ds", addr, secs))
		return true
	}
	l.Fail(addr, now)
	return false
}

func (s *Server) identify(r *http.Request) (Identity, error) {
	if ia, ok := s.cfg.Authenticator.(IdentityAuthenticator); ok {
		return ia.Identify(r)
	}
	p, err := s.cfg.Authenticator.Authenticate(r)
	return Identity{Principal: p}, err
}

// auditRefusal records a refused request in its own transaction. It uses a
// fresh context so a client that hung up is still audited.
func (s *Server) auditRefusal(r *http.Request, rw *recorder) {
	if s.cfg.Auditor == nil {
		return
	}
	info := rw.info
	op, target := info.op, info.target
	if op == "" {
		op = r.Method + " " + r.URL.Path
	}
	if target == "" {
		target = r.URL.Path
	}
	principal := info.actor.Principal
	if principal == "" {
		principal = "(unauthenticated)"
	}
	rec := audit.Record{
		Time:          time.Now().UTC(),
		Principal:     principal,
		SourceAddress: info.actor.Address,
		Operation:     op,
		Target:        target,
		Result:        audit.Denied,
		Detail:        fmt.Sprintf("%d %s", rw.status, info.message),
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := s.cfg.Auditor.Record(ctx, rec); err != nil {
		s.cfg.Logger.Error("audit of refused request failed", "op", op, "err", err)
	}
}

// requestInfo returns the request's reqInfo, set by serve.
func requestInfo(r *http.Request) *reqInfo {
	info, _ := r.Context().Value(identityKey{}).(*reqInfo)
	return info
}

// noteRefusal lets writeError and authorize tell serve what was refused.
func noteRefusal(w http.ResponseWriter, op, target, msg string) {
	rw, ok := w.(*recorder)
	if !ok {
		return
	}
	if op != "" {
		rw.info.op = op
	}
	if target != "" {
		rw.info.target = target
	}
	if msg != "" {
		rw.info.message = msg
	}
}

// agentCheck holds agent tokens to reading and reporting for their own VM:
// the agent endpoints, operation vm.read, target their VM.
func agentCheck(w http.ResponseWriter, op rbac.Operation, target resource.ID) (handled bool, err error) {
	rw, ok := w.(*recorder)
	if !ok || rw.info.identity.Token == nil {
		return false, nil
	}
	tok := *rw.info.identity.Token
	if tok.Kind != auth.KindAgent {
		return false, nil
	}
	if op != rbac.OpVMRead {
		return true, auth.RequireUser(tok)
	}
	return true, auth.MayActOnVM(tok, target.String())
}
