package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/drawbridge/drawbridge/internal/rbac"
)

// oidcCookie binds a sign-in in progress to the browser that started it.
const oidcCookie = "drawbridge_oidc"

// IDTokenVerifier checks an ID token and names its principal
// (auth.OIDCVerifier: signature, issuer, audience, expiry, name and groups
// claims).
type IDTokenVerifier interface {
	Verify(ctx context.Context, rawIDToken string) (rbac.Principal, error)
}

// OIDCLogin signs people in with the OpenID Connect authorization code
// flow and PKCE (S256) against the server's issuer.
type OIDCLogin struct {
	oauth    oauth2.Config
	verifier IDTokenVerifier
	client   *http.Client
	// redirect is the fixed callback URL; empty derives it from the request.
	redirect string

	mu      sync.Mutex
	pending map[string]oidcPending // by state
}

type oidcPending struct {
	verifier, nonce, next, redirect string
	expires                         time.Time
}

// OIDCLoginConfig configures NewOIDCLogin.
type OIDCLoginConfig struct {
	IssuerURL, ClientID, ClientSecret string
	// RedirectURL is the console's callback as registered with the issuer
	// (https://HOST/console/oidc/callback); empty: built from each
	// request's scheme and Host.
	RedirectURL string
	Verifier    IDTokenVerifier
	HTTPClient  *http.Client // default http.DefaultClient
}

// NewOIDCLogin reads the issuer's discovery document for its endpoints.
func NewOIDCLogin(ctx context.Context, cfg OIDCLoginConfig) (*OIDCLogin, error) {
	if cfg.Verifier == nil || cfg.ClientID == "" {
		return nil, errors.New("console oidc: a verifier and a client ID are required")
	}
	client := cfg.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	prov, err := oidc.NewProvider(oidc.ClientContext(ctx, client), cfg.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("console oidc: issuer %s: %w", cfg.IssuerURL, err)
	}
	return &OIDCLogin{
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: prov.Endpoint(),
			Scopes: []string{oidc.ScopeOpenID, "profile", "email"}},
		verifier: cfg.Verifier, client: client, redirect: cfg.RedirectURL, pending: map[string]oidcPending{},
	}, nil
}

func (o *OIDCLogin) redirectFor(r *http.Request, overTLS bool) string {
	if o.redirect != "" {
		return o.redirect
	}
	scheme := "http"
	if overTLS {
		scheme = "https"
	}
	return scheme + "://" + r.Host + Prefix + "oidc/callback"
}

// oidcStart sends the browser to the issuer with a fresh state, nonce and
// PKCE verifier, all kept on the server; the state also goes in a cookie.
func (c *Console) oidcStart(w http.ResponseWriter, r *http.Request) {
	o := c.cfg.OIDC
	if o == nil {
		http.NotFound(w, r)
		return
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	p := oidcPending{verifier: verifier, nonce: nonce, next: safeNext(r.URL.Query().Get("next")), redirect: o.redirectFor(r, c.overTLS(r)), expires: time.Now().Add(10 * time.Minute)}
	o.mu.Lock()
	now := time.Now()
	for k, old := range o.pending {
		if now.After(old.expires) {
			delete(o.pending, k)
		}
	}
	o.pending[state] = p
	o.mu.Unlock()
	c.setCookie(w, r, oidcCookie, state, 600)
	cfg := o.oauth
	cfg.RedirectURL = p.redirect
	http.Redirect(w, r, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)), http.StatusFound)
}

// oidcCallback exchanges the code (with the PKCE verifier), verifies the
// ID token and its nonce, and opens a session.
func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	o := c.cfg.OIDC
	if o == nil {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	fail := func(status int, msg string) {
		csrf := randomToken()
		c.setCookie(w, r, signinCookie, csrf, 600)
		c.render(w, r, status, "signin", page{Title: "Sign in", CSRF: csrf, Data: signinData{Next: Prefix + "vms", Error: msg, OIDC: true}})
	}
	if e := q.Get("error"); e != "" {
		fail(http.StatusUnauthorized, "The identity provider refused the sign-in: "+e+" "+q.Get("error_description"))
		return
	}
	state := q.Get("state")
	ck, err := r.Cookie(oidcCookie)
	if err != nil || state == "" || !validCSRF(ck.Value, state) {
		fail(http.StatusForbidden, "This sign-in was not started by this browser: start again.")
		return
	}
	c.setCookie(w, r, oidcCookie, "", -1)
	o.mu.Lock()
	p, ok := o.pending[state]
	delete(o.pending, state)
	o.mu.Unlock()
	if !ok || time.Now().After(p.expires) {
		fail(http.StatusForbidden, "This sign-in expired or was already used: start again.")
		return
	}
	cfg := o.oauth
	cfg.RedirectURL = p.redirect
	ctx := context.WithValue(r.Context(), oauth2.HTTPClient, o.client)
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		fail(http.StatusUnauthorized, "Exchanging the code failed: "+err.Error())
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		fail(http.StatusUnauthorized, "The identity provider returned no ID token.")
		return
	}
	principal, err := o.verifier.Verify(r.Context(), raw)
	if err != nil {
		fail(http.StatusUnauthorized, "The ID token was not accepted: "+err.Error())
		return
	}
	// Verify checked the signature; the nonce ties the token to this sign-in.
	if n, err := claimString(raw, "nonce"); err != nil || !validCSRF(n, p.nonce) {
		fail(http.StatusUnauthorized, "The ID token's nonce does not match this sign-in.")
		return
	}
	u := c.sessions.create(principal, "", time.Now().Add(c.cfg.SessionTTL))
	c.setCookie(w, r, sessionCookie, u.id, int(c.cfg.SessionTTL.Seconds()))
	http.Redirect(w, r, p.next, http.StatusSeeOther)
}

// claimString reads one string claim of a JWT whose signature was checked.
func claimString(jwt, name string) (string, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", errors.New("not a compact JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", err
	}
	s, _ := claims[name].(string)
	return s, nil
}
