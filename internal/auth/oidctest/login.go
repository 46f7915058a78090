package oidctest

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"
)

// Login is the issuer's authorization code flow with PKCE (S256 only): a
// sign-in form at /authorize where a test (or a browser driven by one)
// types a user name, and /token, which exchanges the code for an ID token
// naming that user ("sub") with the groups Groups gives it.
type Login struct {
	ClientID     string
	ClientSecret string // empty: a public client (PKCE alone)
	// Groups are the "groups" claim per user name.
	Groups map[string][]string

	t     testing.TB
	iss   *Issuer
	mu    sync.Mutex
	codes map[string]grant
}

type grant struct {
	user, clientID, redirect, challenge, nonce string
	expires                                    time.Time
}

// EnableLogin serves /authorize and /token for one client.
func (iss *Issuer) EnableLogin(t testing.TB, clientID, clientSecret string) *Login {
	l := &Login{ClientID: clientID, ClientSecret: clientSecret, Groups: map[string][]string{}, t: t, iss: iss, codes: map[string]grant{}}
	iss.mu.Lock()
	iss.login = l
	iss.mu.Unlock()
	return l
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test identity provider</title></head>
<body><h1>Test identity provider</h1>
<form method="post" action="/authorize">
{{range $k, $v := .}}<input type="hidden" name="{{$k}}" value="{{index $v 0}}">{{end}}
<label for="username">User name</label> <input id="username" name="username" autofocus>
<button type="submit" id="idp-signin">Sign in</button>
</form></body></html>`))

func (l *Login) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := r.Form
	if q.Get("client_id") != l.ClientID || q.Get("response_type") != "code" {
		http.Error(w, "unknown client_id or response_type is not code", http.StatusBadRequest)
		return
	}
	if q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" {
		http.Error(w, "PKCE with S256 is required", http.StatusBadRequest)
		return
	}
	if r.Method == http.MethodGet {
		vals := url.Values{}
		for _, k := range []string{"client_id", "response_type", "redirect_uri", "scope", "state", "nonce", "code_challenge", "code_challenge_method"} {
			vals.Set(k, q.Get(k))
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = loginPage.Execute(w, vals)
		return
	}
	user := q.Get("username")
	if user == "" {
		http.Error(w, "username is required", http.StatusBadRequest)
		return
	}
	code := random()
	l.mu.Lock()
	l.codes[code] = grant{user: user, clientID: q.Get("client_id"), redirect: q.Get("redirect_uri"), challenge: q.Get("code_challenge"),
		nonce: q.Get("nonce"), expires: time.Now().Add(time.Minute)}
	l.mu.Unlock()
	to, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	back := to.Query()
	back.Set("code", code)
	back.Set("state", q.Get("state"))
	to.RawQuery = back.Encode()
	http.Redirect(w, r, to.String(), http.StatusFound)
}

func (l *Login) token(w http.ResponseWriter, r *http.Request) {
	fail := func(code, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": msg})
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "authorization_code" {
		fail("unsupported_grant_type", "want grant_type=authorization_code")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != l.ClientID || (l.ClientSecret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(l.ClientSecret)) != 1) {
		fail("invalid_client", "client authentication failed")
		return
	}
	code := r.PostForm.Get("code")
	l.mu.Lock()
	g, found := l.codes[code]
	delete(l.codes, code) // single use
	l.mu.Unlock()
	if !found || time.Now().After(g.expires) || g.clientID != id || g.redirect != r.PostForm.Get("redirect_uri") {
		fail("invalid_grant", "unknown, used or expired code, or another redirect_uri")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		fail("invalid_grant", "code_verifier does not match the code_challenge")
		return
	}
	now := time.Now()
	claims := map[string]any{"iss": l.iss.URL, "aud": l.ClientID, "sub": g.user, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	if gs, ok := l.Groups[g.user]; ok {
		claims["groups"] = gs
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": random(), "token_type": "Bearer", "expires_in": 3600,
		"id_token": Sign(l.t, l.iss.Key, l.iss.KeyID, claims)})
}

func random() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
