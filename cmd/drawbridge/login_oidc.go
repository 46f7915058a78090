package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/drawbridge/drawbridge/internal/client"
)

// oidcLogin is what a context keeps of an OIDC sign-in (cliContext embeds
// it; its Token is then the ID token the server verifies): how and when to
// refresh that token.
type oidcLogin struct {
	Issuer       string    `json:"issuer,omitempty"`
	ClientID     string    `json:"clientId,omitempty"`
	TokenURL     string    `json:"tokenEndpoint,omitempty"`
	RefreshToken string    `json:"refreshToken,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"` // the ID token's "exp"
}

// oidcNow is the CLI's clock for token expiry (tests move it).
var oidcNow = time.Now

// refreshBefore: an ID token that expires sooner than this is refreshed
// before the command runs, so it does not lapse on the way.
const refreshBefore = 60 * time.Second

// refreshTimeout bounds a refresh made before a command.
const refreshTimeout = 30 * time.Second

// oidcLogin signs in with the device code flow when the server names an
// OIDC issuer; done is false when it does not (the caller asks for a
// token instead).
func (a *app) oidcLogin(ctx context.Context) (done bool, err error) {
	c, err := client.New(a.server, "")
	if err != nil {
		return true, usageError(fmt.Errorf("--server: %w", err))
	}
	if err := client.WithCAFile(a.caPath())(c); err != nil {
		return true, fmt.Errorf("--ca-file: %w", err)
	}
	lc, err := c.LoginConfig(ctx)
	if err != nil {
		return true, err
	}
	if lc.Issuer == "" {
		return false, nil
	}
	toks, err := client.DeviceLogin(ctx, oidcHTTP, lc, a.printDevicePrompt)
	switch {
	case errors.Is(err, client.ErrLoginDenied):
		return true, exitError{code: exitPermission, err: fmt.Errorf("%w at %s", err, lc.Issuer)}
	case errors.Is(err, client.ErrLoginExpired):
		return true, exitError{code: exitAuth, err: fmt.Errorf("%w; run drawbridge login again", err)}
	case err != nil:
		return true, err
	}
	c.SetToken(toks.IDToken)
	if _, err := c.VMs(ctx); err != nil {
		return true, fmt.Errorf("checking the sign-in with the server: %w", err)
	}
	name := a.loginContextName()
	cfg, path, err := a.loadConfig()
	if err != nil {
		return true, err
	}
	cfg.Contexts[name] = cliContext{Server: a.server, Token: toks.IDToken, oidcLogin: oidcLogin{
		Issuer: lc.Issuer, ClientID: lc.ClientID, TokenURL: toks.TokenURL, RefreshToken: toks.RefreshToken, Expiry: toks.Expiry}}
	cfg.Current = name
	if err := saveConfig(path, cfg); err != nil {
		return true, err
	}
	fmt.Fprintf(a.stdout, "logged in to %s with %s as context %q (%s)\n", safeText(a.server), safeText(lc.Issuer), safeText(name), safeText(path))
	return true, nil
}

// loginContextName is the context a login saves: --context, else
// $DRAWBRIDGE_CONTEXT, else "default".
func (a *app) loginContextName() string {
	if n := a.contextName(); n != "" {
		return n
	}
	return "default"
}

// printDevicePrompt tells the user, on stderr, where to approve the sign-in.
func (a *app) printDevicePrompt(p client.DevicePrompt) {
	fmt.Fprintf(a.stderr, "To sign in, open %s and enter the code %s\n", safeText(p.VerificationURI), safeText(p.UserCode))
	if p.VerificationURIComplete != "" {
		fmt.Fprintf(a.stderr, "(or open %s)\n", safeText(p.VerificationURIComplete))
	}
	wait := "Waiting for the sign-in"
	if !p.Expiry.IsZero() {
		wait += fmt.Sprintf(" (the code expires in %s)", time.Until(p.Expiry).Round(time.Second))
	}
	fmt.Fprintln(a.stderr, wait+"...")
}

// keepFresh arranges for c to carry a live ID token when token is a saved
// OIDC sign-in: refreshed now if it expires within refreshBefore, and
// once more if the server answers 401 all the same (clock skew, a
// revoked session). Other tokens are left alone.
func (a *app) keepFresh(c *client.Client, token string) error {
	name, saved, ok := a.oidcContext(token)
	if !ok {
		return nil
	}
	held := token
	left := saved.Expiry.Sub(oidcNow())
	// Without a refresh token (the issuer did not grant offline_access)
	// the token serves until it expires; then only a new login helps.
	if left < refreshBefore && (saved.RefreshToken != "" || left <= 0) {
		ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
		defer cancel()
		tok, err := a.refreshSaved(ctx, name, held)
		if err != nil {
			return err
		}
		c.SetToken(tok)
		held = tok
	}
	c.RefreshOn401(func(ctx context.Context) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, refreshTimeout)
		defer cancel()
		return a.refreshSaved(ctx, name, held)
	})
	return nil
}

// oidcContext finds the saved context whose OIDC sign-in token is.
func (a *app) oidcContext(token string) (string, cliContext, bool) {
	if token == "" {
		return "", cliContext{}, false
	}
	cfg, _, err := a.loadConfig()
	if err != nil {
		return "", cliContext{}, false
	}
	name := a.contextName()
	if name == "" {
		name = cfg.Current
	}
	sc, ok := cfg.Contexts[name]
	return name, sc, ok && sc.Issuer != "" && sc.Token == token
}

// concurrentRefreshWait bounds how long a refresh the issuer refused
// waits for another command's refresh (which spent the single-use refresh
// token a moment earlier) to be saved.
const concurrentRefreshWait = 2 * time.Second

// refreshSaved trades the context's refresh token for a new ID token and
// saves both (the config is replaced whole by a rename, mode 0600). held
// is the token the caller has: if another command refreshed it meanwhile,
// its fresh token is taken instead of spending the refresh token again.
func (a *app) refreshSaved(ctx context.Context, name, held string) (string, error) {
	cfg, path, err := a.loadConfig()
	if err != nil {
		return "", err
	}
	sc := cfg.Contexts[name]
	relogin := func(err error) error {
		how := "run drawbridge login"
		if sc.Server != "" {
			how += " --server " + safeText(sc.Server) + " --context " + safeText(name)
		}
		return exitError{code: exitAuth, err: fmt.Errorf("%w; %s", err, how)}
	}
	if fresh(sc, held) {
		return sc.Token, nil
	}
	if sc.RefreshToken == "" {
		return "", relogin(fmt.Errorf("the sign-in of context %q has expired and holds no refresh token", name))
	}
	toks, err := client.RefreshOIDC(ctx, oidcHTTP, sc.TokenURL, sc.ClientID, sc.RefreshToken)
	if err != nil {
		// Another command may have spent the (single-use) refresh token a
		// moment ago: its result is in the config, or soon will be.
		if tok, ok := a.awaitOtherRefresh(ctx, name, sc.Token); ok {
			return tok, nil
		}
		return "", relogin(err)
	}
	if cfg, path, err = a.loadConfig(); err == nil { // the latest, to change this context only
		sc2 := cfg.Contexts[name]
		sc2.Token, sc2.RefreshToken, sc2.Expiry = toks.IDToken, toks.RefreshToken, toks.Expiry
		cfg.Contexts[name] = sc2
		err = saveConfig(path, cfg)
	}
	if err != nil {
		// The command can still run with the new token; the next one will
		// have to sign in again if the issuer rotated the refresh token.
		fmt.Fprintf(a.stderr, "drawbridge: warning: could not save the refreshed sign-in to %s: %s\n", safeText(path), safeText(oneLine(err.Error())))
	}
	return toks.IDToken, nil
}

// awaitOtherRefresh watches the config for a fresh token other than
// stale, for up to concurrentRefreshWait.
func (a *app) awaitOtherRefresh(ctx context.Context, name, stale string) (string, bool) {
	deadline := time.Now().Add(concurrentRefreshWait)
	for {
		if cfg, _, err := a.loadConfig(); err == nil && fresh(cfg.Contexts[name], stale) {
			return cfg.Contexts[name].Token, true
		}
		if time.Now().After(deadline) {
			return "", false
		}
		select {
		case <-ctx.Done():
			return "", false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// fresh reports whether the saved context holds a token other than held
// that is good for refreshBefore yet.
func fresh(sc cliContext, held string) bool {
	return sc.Token != "" && sc.Token != held && sc.Expiry.Sub(oidcNow()) >= refreshBefore
}

// oidcHTTP talks to the issuer: bounded, unlike http.DefaultClient.
var oidcHTTP = &http.Client{Timeout: 30 * time.Second}
