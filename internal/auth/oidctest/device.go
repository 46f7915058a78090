package oidctest

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"
)

const deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

// Device is the issuer's device authorization grant (RFC 8628) and its
// refresh_token grant for one public client. /device hands out a device
// code; each poll of /token with it is answered by the next error code of
// Script (authorization_pending, slow_down, access_denied, expired_token),
// and once Script is used up with tokens for User: an ID token naming User
// with Groups[User], valid for Lifetime from Now, and a refresh token. A
// refresh token is single use: refreshing rotates it.
type Device struct {
	ClientID string
	User     string
	Groups   map[string][]string
	Script   []string
	Interval int           // seconds advertised to pollers (default 1)
	Lifetime time.Duration // of ID tokens (default 1h)
	Now      func() time.Time

	t         testing.TB
	iss       *Issuer
	mu        sync.Mutex
	codes     map[string]bool   // device codes not yet redeemed
	refresh   map[string]string // live refresh token → user
	polls     []time.Time
	refreshes int
}

// EnableDevice serves /device and the device_code and refresh_token
// grants of /token for the public client clientID; user is who signs in.
func (iss *Issuer) EnableDevice(t testing.TB, clientID, user string) *Device {
	d := &Device{ClientID: clientID, User: user, Groups: map[string][]string{}, Interval: 1, Lifetime: time.Hour,
		Now: time.Now, t: t, iss: iss, codes: map[string]bool{}, refresh: map[string]string{}}
	iss.mu.Lock()
	iss.device = d
	iss.mu.Unlock()
	return d
}

func (iss *Issuer) withDevice(h func(*Device, http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		iss.mu.Lock()
		d := iss.device
		iss.mu.Unlock()
		if d == nil {
			oauthError(w, "unsupported_grant_type", "the device flow is not enabled")
			return
		}
		h(d, w, r)
	}
}

// Polls returns when the device code was polled for.
func (d *Device) Polls() []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Time(nil), d.polls...)
}

// Refreshes counts successful refresh_token grants.
func (d *Device) Refreshes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.refreshes
}

// RevokeRefreshTokens forgets every refresh token (a user signed out at
// the issuer, or an administrator revoked the session).
func (d *Device) RevokeRefreshTokens() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refresh = map[string]string{}
}

func (d *Device) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("client_id") != d.ClientID {
		oauthError(w, "invalid_client", "unknown client_id")
		return
	}
	code, user := random(), "WDJB-MJHT"
	d.mu.Lock()
	d.codes[code] = true
	d.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"device_code": code, "user_code": user,
		"verification_uri": d.iss.URL + "/activate", "verification_uri_complete": d.iss.URL + "/activate?user_code=" + user,
		"expires_in": 600, "interval": d.Interval})
}

func (d *Device) token(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	if f.Get("client_id") != d.ClientID {
		oauthError(w, "invalid_client", "unknown client_id")
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var user string
	switch f.Get("grant_type") {
	case deviceGrant:
		if !d.codes[f.Get("device_code")] {
			oauthError(w, "invalid_grant", "unknown or redeemed device_code")
			return
		}
		d.polls = append(d.polls, time.Now())
		if len(d.Script) > 0 {
			code := d.Script[0]
			d.Script = d.Script[1:]
			oauthError(w, code, "scripted answer")
			return
		}
		delete(d.codes, f.Get("device_code"))
		user = d.User
	default: // refresh_token
		var ok bool
		if user, ok = d.refresh[f.Get("refresh_token")]; !ok {
			oauthError(w, "invalid_grant", "unknown, used or revoked refresh token")
			return
		}
		delete(d.refresh, f.Get("refresh_token"))
		d.refreshes++
	}
	now := d.Now()
	claims := map[string]any{"iss": d.iss.URL, "aud": d.ClientID, "sub": user, "iat": now.Unix(), "exp": now.Add(d.Lifetime).Unix(), "jti": random()}
	if gs, ok := d.Groups[user]; ok {
		claims["groups"] = gs
	}
	rt := random()
	d.refresh[rt] = user
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": random(), "token_type": "Bearer",
		"expires_in": int(d.Lifetime.Seconds()), "refresh_token": rt, "id_token": Sign(d.t, d.iss.Key, d.iss.KeyID, claims)})
}

func oauthError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": msg})
}
