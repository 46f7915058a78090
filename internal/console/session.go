package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

// Cookie names. The session cookie holds only a random session ID; the
// token it was exchanged for stays on the server.
const (
	sessionCookie = "drawbridge_session"
	signinCookie  = "drawbridge_signin" // CSRF token of the sign-in form
)

// user is a signed-in session.
type user struct {
	id        string
	principal rbac.Principal
	csrf      string
	expires   time.Time
	// token is the API token the session was opened with, kept in server
	// memory only so that every request re-checks it: revoking the token
	// ends its console sessions at once. Empty for "local" (no auth).
	token string
}

// sessions is the in-memory session table. Sessions do not survive a
// restart and are not shared between replicas (a user signs in again).
type sessions struct {
	mu sync.Mutex
	m  map[string]*user
}

func newSessions() *sessions { return &sessions{m: map[string]*user{}} }

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *sessions) create(p rbac.Principal, token string, expires time.Time) *user {
	u := &user{id: randomToken(), principal: p, csrf: randomToken(), expires: expires, token: token}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for id, old := range s.m { // sweep expired sessions on each sign-in
		if now.After(old.expires) {
			delete(s.m, id)
		}
	}
	s.m[u.id] = u
	return u
}

func (s *sessions) get(id string) *user {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.m[id]
	if u != nil && time.Now().After(u.expires) {
		delete(s.m, id)
		return nil
	}
	return u
}

func (s *sessions) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// setCookie sets a console cookie: HttpOnly, SameSite=Lax, limited to the
// console's path, and Secure when the browser reached us over TLS (directly,
// or through a trusted proxy that says X-Forwarded-Proto: https).
func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, Secure: c.overTLS(r), SameSite: http.SameSiteLaxMode})
}

func (c *Console) overTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if !strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		return false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	for _, tp := range c.cfg.TrustedProxies {
		if tp.Contains(peer.Unmap()) {
			return true
		}
	}
	return false
}

type userKey struct{}

// authed runs h for a signed-in user; others are sent to the sign-in page
// (GET) or refused (POST). Every POST must carry the session's CSRF token.
func (c *Console) authed(h func(http.ResponseWriter, *http.Request, *user)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u := c.currentUser(w, r)
		if u == nil {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/status") {
				http.Redirect(w, r, Prefix+"signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "sign in first", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost && !validCSRF(r.PostFormValue("csrf"), u.csrf) {
			http.Error(w, "the form's CSRF token is missing or wrong: reload the page and try again", http.StatusForbidden)
			return
		}
		// The service audits policy changes under the actor in the context.
		ctx := jit.WithActor(context.WithValue(r.Context(), userKey{}, u), c.actor(u, r))
		h(w, r.WithContext(ctx), u)
	}
}

func validCSRF(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// currentUser returns the session's user, re-checking its token. Without
// token authentication every visitor gets a "local" session.
func (c *Console) currentUser(w http.ResponseWriter, r *http.Request) *user {
	if ck, err := r.Cookie(sessionCookie); err == nil {
		if u := c.sessions.get(ck.Value); u != nil {
			if u.token == "" || c.tokenStillValid(r.Context(), u) {
				return u
			}
			c.sessions.drop(u.id)
		}
	}
	if c.cfg.Tokens == nil {
		u := c.sessions.create(rbac.Principal{Name: "local"}, "", time.Now().Add(c.cfg.SessionTTL))
		c.setCookie(w, r, sessionCookie, u.id, int(c.cfg.SessionTTL.Seconds()))
		return u
	}
	return nil
}

func (c *Console) tokenStillValid(ctx context.Context, u *user) bool {
	_, _, err := c.cfg.Tokens.LookupToken(ctx, u.token)
	return err == nil
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Tokens == nil {
		http.Redirect(w, r, Prefix+"vms", http.StatusSeeOther)
		return
	}
	csrf := randomToken()
	c.setCookie(w, r, signinCookie, csrf, 600)
	c.render(w, r, http.StatusOK, "signin", page{Title: "Sign in", CSRF: csrf, Data: signinData{Next: safeNext(r.URL.Query().Get("next")), OIDC: c.cfg.OIDC != nil}})
}

type signinData struct {
	Next  string
	Error string
	OIDC  bool // offer single sign-on
}

// safeNext keeps a post-sign-in redirect inside the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return Prefix + "vms"
	}
	return next
}

// signIn exchanges a pasted API token for a session. The form's CSRF token
// must match the cookie set with the form (double submit), so another site
// cannot sign a browser in as someone else.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Tokens == nil {
		http.Redirect(w, r, Prefix+"vms", http.StatusSeeOther)
		return
	}
	ck, err := r.Cookie(signinCookie)
	if err != nil || !validCSRF(r.PostFormValue("csrf"), ck.Value) {
		http.Error(w, "the sign-in form's CSRF token is missing or wrong: reload the page and try again", http.StatusForbidden)
		return
	}
	next := safeNext(r.PostFormValue("next"))
	fail := func(msg string) {
		csrf := randomToken()
		c.setCookie(w, r, signinCookie, csrf, 600)
		c.render(w, r, http.StatusUnauthorized, "signin", page{Title: "Sign in", CSRF: csrf, Data: signinData{Next: next, Error: msg, OIDC: c.cfg.OIDC != nil}})
	}
	plain := strings.TrimSpace(r.PostFormValue("token"))
	if !auth.LooksLikeToken(plain) {
		fail("That is not a drawbridge API token (they start with " + auth.TokenPrefix + ").")
		return
	}
	tok, p, err := c.cfg.Tokens.LookupToken(r.Context(), plain)
	if err != nil {
		fail("The token was not accepted: " + err.Error())
		return
	}
	if err := auth.RequireUser(tok); err != nil {
		fail("Agent tokens cannot sign in to the console.")
		return
	}
	expires := time.Now().Add(c.cfg.SessionTTL)
	if !tok.ExpiresAt.IsZero() && tok.ExpiresAt.Before(expires) {
		expires = tok.ExpiresAt
	}
	u := c.sessions.create(p, plain, expires)
	c.setCookie(w, r, signinCookie, "", -1)
	c.setCookie(w, r, sessionCookie, u.id, int(time.Until(expires).Seconds()))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request, u *user) {
	c.sessions.drop(u.id)
	c.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}

// Name is the signed-in principal's name (for templates).
func (u *user) Name() string { return u.principal.Name }
