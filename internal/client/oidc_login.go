package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/drawbridge/drawbridge/internal/api"
)

// Sign-in outcomes the CLI tells apart (each its own exit code).
var (
	// ErrLoginDenied: the user, or the issuer's policy, refused the sign-in.
	ErrLoginDenied = errors.New("sign-in was denied at the identity provider")
	// ErrLoginExpired: the device code lapsed before anyone approved it.
	ErrLoginExpired = errors.New("the sign-in code expired before it was approved")
	// ErrRefresh: the refresh token was refused (expired, revoked, used).
	ErrRefresh = errors.New("the saved sign-in could not be refreshed")
)

// OIDCTokens are what a sign-in or a refresh yields. IDToken is what the
// server verifies; Expiry is its "exp".
type OIDCTokens struct {
	IDToken      string
	RefreshToken string
	Expiry       time.Time
	TokenURL     string // where to refresh
}

// DevicePrompt is what the user must do: open VerificationURI and type
// UserCode (or open VerificationURIComplete, which carries the code).
type DevicePrompt struct {
	VerificationURI, VerificationURIComplete, UserCode string
	Expiry                                             time.Time
}

// DeviceLogin signs in with the OAuth 2.0 device authorization grant
// (RFC 8628) at lc's issuer: it reads the issuer's discovery document,
// asks for a device code, calls prompt, and polls the token endpoint as
// the issuer says (interval, slow_down) until the user approves, denies
// (ErrLoginDenied) or the code lapses (ErrLoginExpired). hc nil: the
// default HTTP client.
func DeviceLogin(ctx context.Context, hc *http.Client, lc api.LoginConfig, prompt func(DevicePrompt)) (OIDCTokens, error) {
	if hc != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	}
	ep, err := discover(ctx, hc, lc.Issuer)
	if err != nil {
		return OIDCTokens{}, err
	}
	if ep.DeviceAuthURL == "" {
		return OIDCTokens{}, fmt.Errorf("OIDC issuer %s has no device_authorization_endpoint: sign in with an API token instead (drawbridge login --token-stdin)", lc.Issuer)
	}
	ep.AuthStyle = oauth2.AuthStyleInParams // a public client: client_id, no secret
	conf := &oauth2.Config{ClientID: lc.ClientID, Endpoint: ep, Scopes: lc.Scopes}
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return OIDCTokens{}, fmt.Errorf("OIDC device authorization at %s: %s", ep.DeviceAuthURL, oauthMessage(err))
	}
	prompt(DevicePrompt{VerificationURI: da.VerificationURI, VerificationURIComplete: da.VerificationURIComplete, UserCode: da.UserCode, Expiry: da.Expiry})
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		var re *oauth2.RetrieveError
		switch {
		case errors.As(err, &re) && re.ErrorCode == "access_denied":
			return OIDCTokens{}, ErrLoginDenied
		case errors.As(err, &re) && re.ErrorCode == "expired_token",
			errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil: // the code's own expiry
			return OIDCTokens{}, ErrLoginExpired
		}
		return OIDCTokens{}, fmt.Errorf("OIDC sign-in at %s: %s", ep.TokenURL, oauthMessage(err))
	}
	return idTokens(tok, tok.RefreshToken, ep.TokenURL)
}

// discover reads the issuer's OpenID Connect discovery document for its
// token and device authorization endpoints. The document must name the
// issuer exactly as asked (OpenID Connect Discovery 1.0, section 4.3), so a
// server cannot send the CLI to another issuer's endpoints by a redirect.
// Plain JSON, not go-oidc: the CLI verifies no token itself.
func discover(ctx context.Context, hc *http.Client, issuer string) (oauth2.Endpoint, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	where := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return oauth2.Endpoint{}, fmt.Errorf("OIDC issuer %q: %v", issuer, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return oauth2.Endpoint{}, fmt.Errorf("%w: OIDC issuer %s: %v", ErrUnreachable, issuer, err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer        string `json:"issuer"`
		TokenURL      string `json:"token_endpoint"`
		DeviceAuthURL string `json:"device_authorization_endpoint"`
	}
	if resp.StatusCode != http.StatusOK {
		return oauth2.Endpoint{}, fmt.Errorf("OIDC issuer %s: discovery answered %s", issuer, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc); err != nil {
		return oauth2.Endpoint{}, fmt.Errorf("OIDC issuer %s: discovery document: %v", issuer, err)
	}
	if doc.Issuer != issuer {
		return oauth2.Endpoint{}, fmt.Errorf("OIDC issuer %s: its discovery document names issuer %q", issuer, doc.Issuer)
	}
	if doc.TokenURL == "" {
		return oauth2.Endpoint{}, fmt.Errorf("OIDC issuer %s: its discovery document has no token_endpoint", issuer)
	}
	return oauth2.Endpoint{TokenURL: doc.TokenURL, DeviceAuthURL: doc.DeviceAuthURL}, nil
}

// RefreshOIDC trades a refresh token for new tokens at tokenURL (the
// refresh_token grant of a public client). Any refusal wraps ErrRefresh.
func RefreshOIDC(ctx context.Context, hc *http.Client, tokenURL, clientID, refreshToken string) (OIDCTokens, error) {
	if hc != nil {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	}
	conf := &oauth2.Config{ClientID: clientID, Endpoint: oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams}}
	tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return OIDCTokens{}, fmt.Errorf("%w: %s", ErrRefresh, oauthMessage(err))
	}
	out, err := idTokens(tok, refreshToken, tokenURL)
	if err != nil {
		return OIDCTokens{}, fmt.Errorf("%w: %v", ErrRefresh, err)
	}
	return out, nil
}

// idTokens takes the ID token out of a token response; the refresh token
// is the new one if the issuer rotated it, else old.
func idTokens(tok *oauth2.Token, old, tokenURL string) (OIDCTokens, error) {
	id, _ := tok.Extra("id_token").(string)
	if id == "" {
		return OIDCTokens{}, errors.New("the issuer answered without an id_token (is the openid scope granted?)")
	}
	out := OIDCTokens{IDToken: id, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry, TokenURL: tokenURL}
	if out.RefreshToken == "" {
		out.RefreshToken = old
	}
	if exp, ok := jwtExpiry(id); ok {
		out.Expiry = exp
	}
	return out, nil
}

// jwtExpiry reads "exp" from a JWT without verifying it: only to know
// when to refresh; the server verifies the token.
func jwtExpiry(jwt string) (time.Time, bool) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		Exp *json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Exp == nil {
		return time.Time{}, false
	}
	n, err := c.Exp.Float64()
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.Unix(int64(n), 0), true
}

// oauthMessage is an OAuth error as the issuer named it (error and
// error_description), never the raw body, which could echo a credential.
func oauthMessage(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode == "" {
			if re.Response != nil {
				return "the issuer answered " + re.Response.Status
			}
			return "the issuer refused"
		}
		if re.ErrorDescription != "" {
			return re.ErrorCode + ": " + re.ErrorDescription
		}
		return re.ErrorCode
	}
	return err.Error()
}
