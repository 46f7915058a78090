package client

import (
	"context"
	"net/http"
	"sync"

	"github.com/drawbridge/drawbridge/internal/api"
)

// tokenRefresh holds the bearer token when it may change: a refresh after
// a 401 replaces it, once per client.
type tokenRefresh struct {
	mu      sync.Mutex
	token   string
	refresh func(context.Context) (string, error)
	used    bool
}

// tokens returns the client's changeable token, made on first use (set-up
// time, before the client makes calls).
func (c *Client) tokens() *tokenRefresh {
	if c.auth == nil {
		c.auth = &tokenRefresh{token: c.token}
	}
	return c.auth
}

// SetToken replaces the bearer token of later calls (a refreshed ID token).
func (c *Client) SetToken(token string) {
	c.tokens()
	c.auth.mu.Lock()
	defer c.auth.mu.Unlock()
	c.auth.token = token
}

// RefreshOn401 makes a call answered 401 ask refresh for a new token and
// repeat itself once with it; refresh's error is the call's. Only the
// first 401 of the client's life does so: a token refused right after it
// was refreshed is not refreshed again.
func (c *Client) RefreshOn401(refresh func(context.Context) (string, error)) {
	c.tokens()
	c.auth.mu.Lock()
	defer c.auth.mu.Unlock()
	c.auth.refresh = refresh
}

func (c *Client) bearer() string {
	if c.auth == nil {
		return c.token
	}
	c.auth.mu.Lock()
	defer c.auth.mu.Unlock()
	return c.auth.token
}

// renew is called on a 401: true if the call should be sent again.
func (t *tokenRefresh) renew(ctx context.Context) (bool, error) {
	if t == nil {
		return false, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.refresh == nil || t.used {
		return false, nil
	}
	t.used = true
	tok, err := t.refresh(ctx)
	if err != nil {
		return false, err
	}
	t.token = tok
	return true, nil
}

// LoginConfig asks the server, without a token, how to sign in. A server
// older than the login endpoint (404, or 401 from its authentication) is
// taken as one without an issuer.
func (c *Client) LoginConfig(ctx context.Context) (api.LoginConfig, error) {
	var out api.LoginConfig
	err := c.do(ctx, http.MethodGet, "/drawbridge/v1/login", nil, nil, &out)
	if st := StatusCode(err); st == http.StatusNotFound || st == http.StatusUnauthorized {
		return api.LoginConfig{}, nil
	}
	return out, err
}
