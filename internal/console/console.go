// Package console owns drawbridge's web console: server-rendered pages for
// requesters, approvers and administrators, served by `drawbridge server`
// under /console/. It signs people in (an API token exchanged once for a
// server-side session), protects every state change with a per-session
// CSRF token, and calls the same domain services (internal/jit,
// internal/access, internal/assess) the REST API calls, checking RBAC with
// the same operations: what a user may not do is not offered, and every
// handler checks again regardless. Templates, CSS and JavaScript are
// embedded; the pages make no request outside drawbridge.
package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/resource"
)

// Prefix is where the console is mounted.
const Prefix = "/console/"

//go:embed templates/*.html static/*
var assets embed.FS

// Authorizer is the API's: may principal p perform op on target.
type Authorizer interface {
	AuthorizeOperation(p rbac.Principal, op rbac.Operation, target resource.ID) error
}

// TokenLookup checks an API token (access.Store.LookupToken).
type TokenLookup interface {
	LookupToken(ctx context.Context, plaintext string) (auth.Token, rbac.Principal, error)
}

// Config wires a Console.
type Config struct {
	Service *jit.Service
	// Access reads and verifies the audit log; nil hides the Audit page.
	Access *access.Store
	// Tokens checks API tokens at sign-in; nil (a server without
	// authentication) signs every visitor in as the principal "local".
	Tokens TokenLookup
	// OIDC, if set, offers single sign-on through the server's OIDC issuer.
	OIDC       *OIDCLogin
	Authorizer Authorizer
	// Agents, if it can tell, says which hosts have an agent connected
	// (the recommendation treats a host without one as not applicable).
	Agents any
	// TrustedProxies are the peers whose X-Forwarded-For is believed, as
	// for the API ("My IP" is the address the server sees).
	TrustedProxies []netip.Prefix
	// SessionTTL bounds a session (default 8h; never past the token's expiry).
	SessionTTL time.Duration
	// PageSize is how many VMs or audit records a page shows (default 50).
	PageSize int
	Logger   *slog.Logger
}

// Console is the web console's HTTP handler.
type Console struct {
	cfg      Config
	mux      *http.ServeMux
	pages    map[string]*template.Template
	sessions *sessions
	static   http.Handler
	snap     snapshotCache
}

// New builds the console.
func New(cfg Config) (*Console, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 50
	}
	if cfg.Authorizer == nil {
		return nil, errors.New("console: an Authorizer is required")
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	static, err := fs.Sub(assets, "static")
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, mux: http.NewServeMux(), pages: pages, sessions: newSessions(),
		static: http.StripPrefix(Prefix+"static/", http.FileServerFS(static))}
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	m := c.mux
	m.HandleFunc("GET /console/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"vms", http.StatusSeeOther)
	})
	m.HandleFunc("GET /console/static/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		c.static.ServeHTTP(w, r)
	})
	m.HandleFunc("GET /console/signin", c.signInPage)
	m.HandleFunc("POST /console/signin", c.signIn)
	m.HandleFunc("POST /console/signout", c.authed(c.signOut))
	m.HandleFunc("GET /console/oidc/login", c.oidcStart)
	m.HandleFunc("GET /console/oidc/callback", c.oidcCallback)
	m.HandleFunc("GET /console/vms", c.authed(c.vmsPage))
	m.HandleFunc("GET /console/request", c.authed(c.requestPage))
	m.HandleFunc("POST /console/request", c.authed(c.requestSubmit))
	m.HandleFunc("GET /console/requests/{id}", c.authed(c.requestStatusPage))
	m.HandleFunc("GET /console/requests/{id}/status", c.authed(c.requestStatusJSON))
	m.HandleFunc("GET /console/access", c.authed(c.myAccessPage))
	m.HandleFunc("POST /console/grants/{id}/revoke", c.authed(c.revoke))
	m.HandleFunc("GET /console/approvals", c.authed(c.approvalsPage))
	m.HandleFunc("POST /console/approvals/{id}/approve", c.authed(c.approve))
	m.HandleFunc("POST /console/approvals/{id}/deny", c.authed(c.deny))
	m.HandleFunc("GET /console/recommendations", c.authed(c.recommendationsPage))
	m.HandleFunc("POST /console/recommendations/plan", c.authed(c.recommendationsPlan))
	m.HandleFunc("POST /console/recommendations/apply", c.authed(c.recommendationsApply))
	m.HandleFunc("GET /console/policies", c.authed(c.policiesPage))
	m.HandleFunc("GET /console/policies/edit", c.authed(c.policyEditPage))
	m.HandleFunc("POST /console/policies/edit", c.authed(c.policySave))
	m.HandleFunc("POST /console/policies/disable", c.authed(c.policyDisable))
	m.HandleFunc("GET /console/audit", c.authed(c.auditPage))
}

// ServeHTTP implements http.Handler. Every response forbids framing and
// outside sources: the pages load only drawbridge's own files.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	c.mux.ServeHTTP(w, r)
}

// clientAddr is the peer address, or the first X-Forwarded-For hop when the
// peer is a trusted proxy (the API's rule).
func (c *Console) clientAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	peer = peer.Unmap()
	xff := r.Header.Get("X-Forwarded-For")
	if xff == "" {
		return peer
	}
	for _, tp := range c.cfg.TrustedProxies {
		if tp.Contains(peer) {
			first, _, _ := strings.Cut(xff, ",")
			if a, err := netip.ParseAddr(strings.TrimSpace(first)); err == nil {
				return a.Unmap()
			}
		}
	}
	return peer
}

// may reports whether the signed-in user may perform op on target; an
// unparsable target or an authorizer failure is a no.
func (c *Console) may(u *user, op rbac.Operation, target string) bool {
	ok, err := rbac.Allowed(c.cfg.Authorizer, u.principal, op, target)
	if err != nil {
		c.cfg.Logger.Error("console authorization", "op", op, "target", target, "err", err)
	}
	return ok
}

// actor is the jit.Actor of a console request.
func (c *Console) actor(u *user, r *http.Request) jit.Actor {
	a := jit.Actor{Principal: u.principal.Name, Groups: u.principal.Groups}
	if addr := c.clientAddr(r); addr.IsValid() {
		a.Address = addr.String()
	}
	return a
}
