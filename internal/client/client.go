// Package client is a small HTTP client for drawbridge's REST API, used by
// the CLI and the demo. It speaks the server's wire types (internal/api) and
// turns Azure's error envelope into an *Error carrying the server's message
// and status code.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
)

// Client calls one drawbridge server.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
	auth  *tokenRefresh // set by SetToken, RefreshOn401 (oidc.go); shared by copies
}

// ErrUnreachable wraps the error of a call that got no answer at all.
var ErrUnreachable = errors.New("cannot reach drawbridge server")

// Error is an error response from the server. Its message is the server's.
type Error struct {
	StatusCode int
	Code       string // Azure's error code, e.g. "BadRequest"
	Target     string // the field the server names, when it does
	Message    string
}

func (e *Error) Error() string { return e.Message }

// New returns a client for the server at baseURL (e.g.
// http://127.0.0.1:8080). A non-empty token is sent as a bearer token.
// https:// servers are verified against the system roots unless an option
// (WithCAFile) says otherwise.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %v", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http://host:port or https://host:port", baseURL)
	}
	c := &Client{base: u, token: token, http: &http.Client{Timeout: 30 * time.Second}}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// url is the server's URL with path appended. path is already escaped
// (callers escape names with url.PathEscape), so it is kept as RawPath;
// setting it as Path alone would escape it a second time ("Security%20Reader"
// sent as "Security%2520Reader"). A path that is not a valid escaping is
// taken as unescaped.
func (c *Client) url(path string) url.URL {
	u := *c.base
	if p, err := url.PathUnescape(path); err == nil {
		u.Path = c.base.Path + p
		u.RawPath = c.base.EscapedPath() + path
	} else {
		u.Path = c.base.Path + path
		u.RawPath = ""
	}
	return u
}

// yamlBody is a request body sent as it is, labelled application/yaml.
type yamlBody []byte

// do sends a request. body is JSON-encoded unless it is a []byte (JSON)
// or a yamlBody, which are sent as they are; out, if not nil, receives the
// decoded JSON response.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any, out any) error {
	u := c.url(path)
	u.RawQuery = query.Encode()
	contentType := "application/json"
	if y, ok := body.(yamlBody); ok {
		body, contentType = []byte(y), "application/yaml"
	}
	var payload []byte
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return fmt.Errorf("encoding request: %w", err)
			}
		}
		payload = b
	}
	var (
		resp *http.Response
		data []byte
	)
	// One retry after a 429's Retry-After (bounded), then the answer stands.
	for attempt := 0; ; attempt++ {
		var err error
		resp, data, err = c.send(ctx, method, u.String(), payload, body != nil, contentType)
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusUnauthorized {
			if retry, err := c.auth.renew(ctx); err != nil || retry {
				if err != nil {
					return err
				}
				continue // once (renew answers true only the first time); a 401 changed nothing, so even a POST may be repeated
			}
		}
		wait, ok := retryAfter(resp)
		if resp.StatusCode != http.StatusTooManyRequests || attempt > 0 || !ok {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	if resp.StatusCode >= 300 {
		return decodeError(resp, data)
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding response: %w", method, path, err)
	}
	return nil
}

func decodeError(resp *http.Response, data []byte) error {
	var env api.ErrorResponse
	if err := json.Unmarshal(data, &env); err == nil && env.Error.Message != "" {
		return &Error{StatusCode: resp.StatusCode, Code: env.Error.Code, Target: env.Error.Target, Message: env.Error.Message}
	}
	msg := strings.TrimSpace(string(data))
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = resp.Status
	} else {
		msg = resp.Status + ": " + msg
	}
	return &Error{StatusCode: resp.StatusCode, Message: "server answered " + msg}
}

// StatusCode returns the HTTP status of an *Error, or 0.
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

func checkID(id string) error {
	if !strings.HasPrefix(strings.ToLower(id), "/subscriptions/") {
		return fmt.Errorf("policy id %q must be a resource ID starting with /subscriptions/", id)
	}
	return nil
}

// Health checks that the server answers.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil, nil)
}

// PutPolicy creates or replaces the policy with resource ID id.
func (c *Client) PutPolicy(ctx context.Context, id string, body api.PolicyResource) (api.PolicyResource, error) {
	var out api.PolicyResource
	if err := checkID(id); err != nil {
		return out, err
	}
	err := c.do(ctx, http.MethodPut, id, nil, body, &out)
	return out, err
}

// PutPolicyRaw PUTs an Azure policy body exactly as given.
func (c *Client) PutPolicyRaw(ctx context.Context, id string, body []byte) (api.PolicyResource, error) {
	var out api.PolicyResource
	if err := checkID(id); err != nil {
		return out, err
	}
	err := c.do(ctx, http.MethodPut, id, nil, body, &out)
	return out, err
}

// GetPolicy returns the policy with resource ID id.
func (c *Client) GetPolicy(ctx context.Context, id string) (api.PolicyResource, error) {
	var out api.PolicyResource
	if err := checkID(id); err != nil {
		return out, err
	}
	err := c.do(ctx, http.MethodGet, id, nil, nil, &out)
	return out, err
}

// DeletePolicy deletes a policy, which disables JIT on its VMs.
func (c *Client) DeletePolicy(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, id, nil, nil, nil)
}

// ListPolicies lists every policy the server holds.
func (c *Client) ListPolicies(ctx context.Context) ([]api.PolicyResource, error) {
	var out api.ListResponse[api.PolicyResource]
	err := c.do(ctx, http.MethodGet, "/drawbridge/v1/policies", nil, nil, &out)
	return out.Value, err
}

// Request asks for ports on one VM (drawbridge's short form).
func (c *Client) Request(ctx context.Context, in api.SimpleRequest) (api.RequestResource, error) {
	var out api.RequestResource
	err := c.do(ctx, http.MethodPost, "/drawbridge/v1/requests", nil, in, &out)
	return out, err
}

// Grants lists grants, optionally of one VM and only active ones.
func (c *Client) Grants(ctx context.Context, vmID string, activeOnly bool) ([]jit.Grant, error) {
	q := url.Values{}
	if vmID != "" {
		q.Set("vm", vmID)
	}
	if activeOnly {
		q.Set("active", "true")
	}
	return allPages[jit.Grant](c, ctx, "/drawbridge/v1/grants", q)
}

// Grant returns one grant, found among the VM's grants (vmID may be empty).
func (c *Client) Grant(ctx context.Context, vmID, grantID string) (jit.Grant, error) {
	gs, err := c.Grants(ctx, vmID, false)
	if err != nil {
		return jit.Grant{}, err
	}
	for _, g := range gs {
		if g.ID == grantID {
			return g, nil
		}
	}
	return jit.Grant{}, &Error{StatusCode: http.StatusNotFound, Code: "NotFound", Target: "grantId", Message: "grantId: grant " + grantID + " not found"}
}

// Revoke ends a grant early.
func (c *Client) Revoke(ctx context.Context, grantID string) (jit.Grant, error) {
	var out jit.Grant
	if grantID == "" || strings.ContainsAny(grantID, "/?#") {
		return out, fmt.Errorf("grantId: %q is not a grant ID", grantID)
	}
	err := c.do(ctx, http.MethodPost, "/drawbridge/v1/grants/"+url.PathEscape(grantID)+"/revoke", nil, nil, &out)
	return out, err
}

// VMs lists the VMs the server knows.
func (c *Client) VMs(ctx context.Context) ([]api.VMSummary, error) {
	return allPages[api.VMSummary](c, ctx, "/drawbridge/v1/vms", nil)
}

// Network returns the firewall in front of a VM.
func (c *Client) Network(ctx context.Context, vmID string) (sim.View, error) {
	var out sim.View
	err := c.do(ctx, http.MethodGet, "/drawbridge/v1/network", url.Values{"vm": {vmID}}, nil, &out)
	return out, err
}

// ApplyInventory loads an inventory document (YAML or JSON) and returns the
// counts of objects the server read.
func (c *Client) ApplyInventory(ctx context.Context, doc []byte) (map[string]int, error) {
	out := map[string]int{}
	var body any = yamlBody(doc) // YAML is a superset of JSON: either parses
	if json.Valid(doc) {
		body = doc
	}
	err := c.do(ctx, http.MethodPost, "/drawbridge/v1/inventory", nil, body, &out)
	return out, err
}

// send makes one HTTP call and reads its whole answer.
func (c *Client) send(ctx context.Context, method, u string, payload []byte, hasBody bool, contentType string) (*http.Response, []byte, error) {
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, nil, err
	}
	if hasBody {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if tok := c.bearer(); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, fmt.Errorf("%w at %s: %v", ErrUnreachable, c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: reading response: %w", method, req.URL.Path, err)
	}
	return resp, data, nil
}

// maxRetryAfter bounds how long the client waits on a 429 before its one
// retry; a longer Retry-After is reported instead of waited out.
const maxRetryAfter = 30 * time.Second

// retryAfter reads a Retry-After in seconds (the form drawbridge sends).
func retryAfter(resp *http.Response) (time.Duration, bool) {
	n, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After")))
	if err != nil || n < 0 || time.Duration(n)*time.Second > maxRetryAfter {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}
