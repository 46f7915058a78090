package armcompat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/security/armsecurity"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/server"
)

const (
	sub      = "00000000-0000-0000-0000-0000000000a5"
	pageSize = 2 // small, so that every list call below takes several pages
)

// vmSpec places one test VM.
type vmSpec struct{ rg, loc, name string }

// The test VMs: 5 in rg-a (3 in westeurope, 2 in northeurope), 2 in rg-b
// (westeurope). One policy per VM gives lists of 7, 5, 5 and 2 policies.
var vms = []vmSpec{
	{"rg-a", "westeurope", "a-we-0"}, {"rg-a", "westeurope", "a-we-1"}, {"rg-a", "westeurope", "a-we-2"},
	{"rg-a", "northeurope", "a-ne-0"}, {"rg-a", "northeurope", "a-ne-1"},
	{"rg-b", "westeurope", "b-we-0"}, {"rg-b", "westeurope", "b-we-1"},
}

func vmID(v vmSpec) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + v.rg + "/providers/Microsoft.Compute/virtualMachines/" + v.name
}

// testInventory gives each VM a NIC with its own NSG, so JIT has something
// to enforce in.
func testInventory() inventory.Inventory {
	var inv inventory.Inventory
	for i, v := range vms {
		base := "/subscriptions/" + sub + "/resourceGroups/" + v.rg + "/providers/Microsoft.Network/"
		nic, nsg := base+"networkInterfaces/"+v.name+"-nic", base+"networkSecurityGroups/"+v.name+"-nsg"
		inv.VMs = append(inv.VMs, inventory.VM{ID: vmID(v), Name: v.name, Cloud: inventory.Azure, Provider: inventory.ProviderSim, Location: v.loc, NICs: []string{nic}})
		inv.NICs = append(inv.NICs, inventory.NIC{ID: nic, NSG: nsg, PrivateIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 5, 0, byte(4 + i)})}})
		inv.NSGs = append(inv.NSGs, netrule.NSG{ID: nsg, Name: v.name + "-nsg", Location: v.loc, SecurityRules: []netrule.SecurityRule{}})
	}
	return inv
}

// env is a running drawbridge server behind a TLS front, and SDK clients
// pointed at it.
type env struct {
	t      *testing.T
	srv    *server.Server
	front  *httptest.Server
	rec    *recorder
	admin  *armsecurity.JitNetworkAccessPoliciesClient
	ctx    context.Context
	cancel context.CancelFunc
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db"),
		// The TLS front is the proxy whose X-Forwarded-* the server believes.
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")},
		AzurePageSize:  pageSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if err := srv.Service.ApplyInventory(context.Background(), testInventory()); err != nil {
		t.Fatal(err)
	}
	// drawbridge serves plain HTTP; TLS is a front's job (a load balancer or
	// reverse proxy), as here. The SDK sends bearer tokens only over TLS.
	target, _ := url.Parse(srv.URL)
	front := httptest.NewTLSServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.SetXForwarded()
	}})
	t.Cleanup(front.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	e := &env{t: t, srv: srv, front: front, rec: &recorder{}, ctx: ctx, cancel: cancel}
	e.admin = e.client(srv.AdminToken, "")
	return e
}

// client returns an SDK client that authenticates with token; apiVersion,
// if set, replaces the SDK's.
func (e *env) client(token, apiVersion string) *armsecurity.JitNetworkAccessPoliciesClient {
	e.t.Helper()
	opts := &arm.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud: cloud.Configuration{
				ActiveDirectoryAuthorityHost: "https://login.invalid/",
				Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
					cloud.ResourceManager: {Endpoint: e.front.URL, Audience: "https://management.core.windows.net/"},
				},
			},
			Transport:       e.front.Client(), // trusts the front's test certificate
			PerCallPolicies: []policy.Policy{e.rec},
			APIVersion:      apiVersion,
		},
	}
	c, err := armsecurity.NewJitNetworkAccessPoliciesClient(sub, staticToken(token), opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// staticToken is a credential that always presents one drawbridge token.
type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// exchange is one response the SDK received.
type exchange struct {
	method, path, operation string
	status                  int
	body                    []byte
}

// recorder keeps every response the SDK clients receive, for the
// conformance checks over all of them.
type recorder struct {
	mu  sync.Mutex
	all []exchange
}

func (r *recorder) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	r.all = append(r.all, exchange{method: req.Raw().Method, path: req.Raw().URL.Path, operation: operationOf(req.Raw()), status: resp.StatusCode, body: body})
	r.mu.Unlock()
	return resp, nil
}

// operationOf names the specification's operation a request is.
func operationOf(r *http.Request) string {
	p := strings.TrimSuffix(r.URL.Path, "/")
	segs := strings.Split(p, "/")
	last := segs[len(segs)-1]
	switch {
	case r.Method == http.MethodPost && last == "initiate":
		return "Initiate"
	case last == "jitNetworkAccessPolicies":
		return "List"
	case r.Method == http.MethodPut:
		return "CreateOrUpdate"
	case r.Method == http.MethodDelete:
		return "Delete"
	}
	return "Get"
}

func (r *recorder) exchanges() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]exchange(nil), r.all...)
}

// raw sends a request straight to the server (not through the SDK), for
// what the SDK cannot express: drawbridge's own endpoints and bodies the SDK
// models would never produce.
func (e *env) raw(method, path, body string) (int, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.srv.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			e.t.Fatalf("%s %s: %d, not JSON: %s", method, path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode, out
}

// tokenFor creates a token for principal with role at scope.
func (e *env) tokenFor(principal, role, scope string) string {
	e.t.Helper()
	st, out := e.raw("POST", "/drawbridge/v1/tokens", fmt.Sprintf(`{"principal":%q}`, principal))
	if st != 201 {
		e.t.Fatalf("create token: %d %v", st, out)
	}
	st, body := e.raw("POST", "/drawbridge/v1/roleAssignments", fmt.Sprintf(`{"roleDefinitionName":%q,"principalName":%q,"principalType":"User","scope":%q}`, role, principal, scope))
	if st != 201 {
		e.t.Fatalf("assign role: %d %v", st, body)
	}
	return out["token"].(string)
}

func ptr[T any](v T) *T { return &v }
