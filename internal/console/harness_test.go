package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/auth/oidctest"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/resource"
	"github.com/drawbridge/drawbridge/internal/server"
)

const (
	rgScope  = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/demo-rg"
	webVM    = rgScope + "/providers/Microsoft.Compute/virtualMachines/web-01"
	webNSG   = rgScope + "/providers/Microsoft.Network/networkSecurityGroups/web-01-nsg"
	webPol   = rgScope + "/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/web"
	approver = "approvers"
)

type env struct {
	t     *testing.T
	srv   *server.Server
	admin string
}

// startEnv runs a real server (SQLite, sim provider, sample inventory,
// authentication on; opts may change that) with a JIT policy on web-01: port 22 needs one
// approval from the group "approvers", port 3389 opens at once.
func startEnv(t *testing.T, opts ...func(*server.Config)) *env {
	t.Helper()
	cfg := server.Config{Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db"), SampleInventory: true}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e := &env{t: t, srv: srv, admin: srv.AdminToken}
	if !cfg.SampleInventory {
		return e
	}
	ctx := jit.WithActor(context.Background(), jit.Actor{Principal: "setup"})
	_, err = srv.Service.PutPolicy(ctx, jit.Policy{ID: webPol, Name: "web", Location: "westeurope", VirtualMachines: []jit.VMPolicy{{
		ID: webVM, Ports: []jit.PortPolicy{
			{Number: 22, Protocol: netrule.Tcp, AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H", RequireApproval: &jit.ApprovalRule{Approvers: approver, Count: 1}},
			{Number: 3389, Protocol: netrule.Tcp, AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT1H"},
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// user issues a token for principal in groups and assigns it roles at scope.
func (e *env) user(principal string, groups []string, scope string, roles ...string) string {
	e.t.Helper()
	ctx := context.Background()
	actor := jit.Actor{Principal: "setup"}
	plain, _, err := e.srv.Access.CreateToken(ctx, actor, auth.IssueParams{Principal: principal}, groups)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, role := range roles {
		if _, err := e.srv.Access.Assign(ctx, actor, rbac.Assignment{Role: role, Principal: principal, PrincipalType: rbac.PrincipalUser, Scope: resource.MustParse(scope)}); err != nil {
			e.t.Fatal(err)
		}
	}
	return plain
}

// withOIDC starts a test issuer whose code flow knows the console as a
// confidential client, and configures the server for it.
func withOIDC(t *testing.T) (*oidctest.Login, func(*server.Config)) {
	iss := oidctest.NewIssuer(t)
	login := iss.EnableLogin(t, "drawbridge-console", "console-secret")
	return login, func(c *server.Config) {
		c.OIDC = &auth.OIDCConfig{IssuerURL: iss.URL, ClientID: login.ClientID}
		c.OIDCClientSecret = login.ClientSecret
	}
}

// browser is a cookie-keeping HTTP client: one signed-in person.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: e.t, base: e.srv.URL, c: &http.Client{Jar: jar}}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (b *browser) post(path string, form url.Values) (int, string) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.base+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// csrf reads the CSRF token of the form on page path.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	st, body := b.get(path)
	m := csrfRE.FindStringSubmatch(body)
	if st != 200 || m == nil {
		b.t.Fatalf("GET %s: %d, no CSRF token in the page", path, st)
	}
	return m[1]
}

func (b *browser) signIn(token string) { b.signInTo(token, "/console/vms") }

// signInTo signs in and lands on next.
func (b *browser) signInTo(token, next string) {
	b.t.Helper()
	csrf := b.csrf("/console/signin")
	st, body := b.post("/console/signin", url.Values{"csrf": {csrf}, "token": {token}, "next": {next}})
	if st != 200 || !strings.Contains(body, `id="principal"`) {
		b.t.Fatalf("sign-in: %d %s", st, body)
	}
}
