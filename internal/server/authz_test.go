package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/server"
)

const (
	azureRG  = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/demo-rg"
	awsRG    = "/subscriptions/aws-111122223333/resourceGroups/us-east-1"
	webVM    = azureRG + "/providers/Microsoft.Compute/virtualMachines/web-01"
	bastion  = awsRG + "/providers/AWS.EC2/instances/i-0a1b2c3d4e5f60001"
	webPol   = azureRG + "/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/web"
	awsPol   = awsRG + "/providers/Microsoft.Security/locations/us-east-1/jitNetworkAccessPolicies/aws"
	approver = "approvers"
)

type httpEnv struct {
	t     *testing.T
	srv   *server.Server
	admin string
}

func startAuthServer(t *testing.T) *httpEnv {
	t.Helper()
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db"), SampleInventory: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if srv.AdminToken == "" {
		t.Fatal("first start issued no admin token")
	}
	return &httpEnv{t: t, srv: srv, admin: srv.AdminToken}
}

// call sends a request with token (none if empty) and returns the status,
// the error code (if any) and the body.
func (e *httpEnv) call(token, method, path string, body any) (int, string, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, ok := body.(string)
		if !ok {
			j, err := json.Marshal(body)
			if err != nil {
				e.t.Fatal(err)
			}
			b = string(j)
		}
		rd = strings.NewReader(b)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var env struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(data, &env)
	return resp.StatusCode, env.Error.Code, data
}

func (e *httpEnv) must(token, method, path string, body any, want int) []byte {
	e.t.Helper()
	st, _, data := e.call(token, method, path, body)
	if st != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, st, want, data)
	}
	return data
}

// tokenFor creates a token for principal and assigns it role at scope.
func (e *httpEnv) tokenFor(principal, role, scope string) string {
	e.t.Helper()
	var out struct{ Token string }
	if err := json.Unmarshal(e.must(e.admin, "POST", "/drawbridge/v1/tokens", map[string]string{"principal": principal}, 201), &out); err != nil {
		e.t.Fatal(err)
	}
	e.must(e.admin, "POST", "/drawbridge/v1/roleAssignments", map[string]string{
		"roleDefinitionName": role, "principalName": principal, "principalType": "User", "scope": scope}, 201)
	return out.Token
}

func policyBody(vm string) map[string]any {
	return map[string]any{"properties": map[string]any{"virtualMachines": []any{map[string]any{
		"id": vm,
		"ports": []any{
			map[string]any{"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"},
			map[string]any{"number": 3389, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H",
				"requireApproval": map[string]any{"approvers": approver, "count": 1}},
		},
	}}}}
}

// seed puts a policy on each VM, opens a grant on port 22 and leaves a
// request for 3389 pending, all as the administrator.
func (e *httpEnv) seed() (grants, pending map[string]string) {
	grants, pending = map[string]string{}, map[string]string{}
	for vm, pol := range map[string]string{webVM: webPol, bastion: awsPol} {
		e.must(e.admin, "PUT", pol, policyBody(vm), 200)
		var rr struct {
			ID              string
			VirtualMachines []struct{ Ports []struct{ GrantID string } }
		}
		json.Unmarshal(e.must(e.admin, "POST", "/drawbridge/v1/requests", map[string]any{"vm": vm, "ports": []int{22}, "duration": "PT1H", "source": "198.18.9.9"}, 202), &rr)
		grants[vm] = rr.VirtualMachines[0].Ports[0].GrantID
		json.Unmarshal(e.must(e.admin, "POST", "/drawbridge/v1/requests", map[string]any{"vm": vm, "ports": []int{3389}, "duration": "PT1H", "source": "198.18.9.9", "justification": "patching"}, 202), &rr)
		pending[vm] = rr.ID
	}
	return grants, pending
}

type matrixOp struct {
	name string
	root bool // targets "/": in scope means assigned at "/"
	// call performs the operation on vm (VM operations) and returns status and code.
	call func(e *httpEnv, tok, vm string, grants, pending map[string]string) (int, string)
	// ok is the status when authorization passes.
	ok int
	// okCode, when set, is the error code when authorization passes (approve:
	// the service refuses because API tokens carry no approver group).
	okCode string
	// list, for a listing, is its path; shows names the item whose presence
	// means "allowed". A listing is never refused for scope: the caller
	// sees the items it may read (200), and the others are left out.
	list  func(vm string) string
	shows func(vm string) string
}

// listed calls a listing op and reports its status and whether the item
// it shows for vm is in the answer.
func (op matrixOp) listed(e *httpEnv, tok, vm string) (int, bool) {
	st, _, body := e.call(tok, "GET", op.list(vm), nil)
	return st, strings.Contains(strings.ToLower(string(body)), strings.ToLower(op.shows(vm)))
}

func policyOf(vm string) string {
	if vm == webVM {
		return webPol
	}
	return awsPol
}

func rgOf(vm string) string {
	if vm == webVM {
		return azureRG
	}
	return awsRG
}

func simple(method string, path func(vm string) string, body func(vm string) any) func(*httpEnv, string, string, map[string]string, map[string]string) (int, string) {
	return func(e *httpEnv, tok, vm string, _, _ map[string]string) (int, string) {
		var b any
		if body != nil {
			b = body(vm)
		}
		st, code, _ := e.call(tok, method, path(vm), b)
		return st, code
	}
}

var matrixOps = []matrixOp{
	{name: "policy.get", ok: 200, call: simple("GET", policyOf, nil)},
	{name: "policy.list", ok: 200, list: func(vm string) string {
		return rgOf(vm) + "/providers/Microsoft.Security/jitNetworkAccessPolicies?api-version=2020-01-01"
	}, shows: policyOf},
	{name: "grants.list", ok: 200, call: simple("GET", func(vm string) string { return "/drawbridge/v1/grants?vm=" + vm }, nil)},
	{name: "network.view", ok: 200, call: simple("GET", func(vm string) string { return "/drawbridge/v1/network?vm=" + vm }, nil)},
	{name: "revoke", ok: 200, call: func(e *httpEnv, tok, vm string, grants, _ map[string]string) (int, string) {
		st, code, _ := e.call(tok, "POST", "/drawbridge/v1/grants/"+grants[vm]+"/revoke", nil)
		return st, code
	}},
	{name: "initiate", ok: 202, call: simple("POST", func(string) string { return "/drawbridge/v1/requests" },
		func(vm string) any {
			return map[string]any{"vm": vm, "ports": []int{22}, "duration": "PT1H", "source": "198.18.5.5"}
		})},
	{name: "approve", ok: 403, okCode: "Forbidden", call: func(e *httpEnv, tok, vm string, _, pending map[string]string) (int, string) {
		st, code, _ := e.call(tok, "POST", "/drawbridge/v1/requests/"+pending[vm]+"/approve", nil)
		return st, code
	}},
	{name: "policy.put", ok: 200, call: simple("PUT", policyOf, func(vm string) any { return policyBody(vm) })},
	{name: "policy.delete", ok: 200, call: simple("DELETE", policyOf, nil)},
	{name: "vm.list", root: true, ok: 200, list: func(string) string { return "/drawbridge/v1/vms" }, shows: func(vm string) string { return `"` + vm + `"` }},
	{name: "policy.list /", root: true, ok: 200, list: func(string) string { return "/drawbridge/v1/policies" },
		shows: func(string) string { return awsPol }}, // web-01's may be deleted by now; bastion's is out of the RG principal's scope
	{name: "inventory.apply", root: true, ok: 400, okCode: "InvalidInventory", call: simple("POST", func(string) string { return "/drawbridge/v1/inventory" }, func(string) any { return "vms: [unclosed" })},
	{name: "role.read", root: true, ok: 200, call: simple("GET", func(string) string { return "/drawbridge/v1/roles" }, nil)},
	{name: "role.write", root: true, ok: 201, call: simple("POST", func(string) string { return "/drawbridge/v1/roleAssignments" },
		func(string) any {
			return map[string]string{"roleDefinitionName": "Reader", "principalName": "someone", "principalType": "User", "scope": "/"}
		})},
	{name: "audit.read", root: true, ok: 200, call: simple("GET", func(string) string { return "/drawbridge/v1/audit?limit=1" }, nil)},
	{name: "token.admin", root: true, ok: 200, call: simple("GET", func(string) string { return "/drawbridge/v1/tokens" }, nil)},
}

// TestAPIMatrix: every built-in role × every API operation × in scope / out
// of scope, through real HTTP with API tokens. Each role is assigned to one
// principal at the Azure resource group (VM operations in scope: web-01 in
// that group; out of scope: the AWS instance bastion in another) and to
// another principal at "/" (operations on "/" in scope; out of scope: the
// resource-group principal). Expectations are written out per role, in the
// order of matrixOps: Y allowed in scope, N denied in scope; out of scope is
// denied for every role and operation. Listings are never refused for
// scope: Y means the item in scope is listed, N and out of scope that it is
// left out of a 200 answer.
func TestAPIMatrix(t *testing.T) {
	want := map[string]string{
		//                  get lst grt net rev ini apr put del vms pls inv rrd rwr aud tok
		"Owner":                        "Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y",
		"Contributor":                  "Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   Y   N   Y   N",
		"Reader":                       "Y   Y   Y   Y   N   N   N   N   N   Y   Y   N   Y   N   Y   N",
		"Security Reader":              "Y   Y   Y   N   N   N   N   N   N   N   Y   N   Y   N   N   N",
		"Security Admin":               "Y   Y   Y   N   Y   N   Y   N   N   N   Y   N   Y   N   N   N",
		"JIT Network Access Requester": "Y   Y   Y   N   N   Y   Y   N   N   Y   Y   N   N   N   N   N",
	}
	for role, row := range want {
		expect := strings.Fields(row)
		if len(expect) != len(matrixOps) {
			t.Fatalf("%s: %d expectations for %d operations", role, len(expect), len(matrixOps))
		}
		t.Run(role, func(t *testing.T) {
			e := startAuthServer(t)
			grants, pending := e.seed()
			slug := strings.ReplaceAll(strings.ToLower(role), " ", "-")
			rgTok := e.tokenFor(slug+"-rg", role, azureRG)
			rootTok := e.tokenFor(slug+"-root", role, "/")
			for i, op := range matrixOps {
				type tc struct {
					scope, tok, vm string
					allowed        bool
				}
				cases := []tc{{"in", rgTok, webVM, expect[i] == "Y"}, {"out", rgTok, bastion, false}}
				if op.root {
					cases = []tc{{"in", rootTok, webVM, expect[i] == "Y"}, {"out", rgTok, webVM, false}}
				}
				if op.list != nil {
					if op.root { // the resource-group principal lists "/": it must not see bastion
						cases[1].vm = bastion
					}
					for _, c := range cases {
						if st, seen := op.listed(e, c.tok, c.vm); st != op.ok || seen != c.allowed {
							t.Errorf("%s %s (%s scope): status %d, shows %s: %v, want %d and %v", role, op.name, c.scope, st, c.vm, seen, op.ok, c.allowed)
						}
					}
					continue
				}
				for _, c := range cases {
					st, code := op.call(e, c.tok, c.vm, grants, pending)
					denied := st == 403 && code == "AuthorizationFailed"
					switch {
					case c.allowed && (st != op.ok || (op.okCode != "" && code != op.okCode)):
						t.Errorf("%s %s (%s scope): status %d %s, want %d %s", role, op.name, c.scope, st, code, op.ok, op.okCode)
					case !c.allowed && !denied:
						t.Errorf("%s %s (%s scope): status %d %s, want 403 AuthorizationFailed", role, op.name, c.scope, st, code)
					case !c.allowed:
						recs, err := e.srv.Access.Audit(context.Background(), auditstore.Filter{Limit: 1})
						if err != nil || len(recs) != 1 || recs[0].Result != audit.Denied || recs[0].Principal != slug+"-rg" && recs[0].Principal != slug+"-root" {
							t.Errorf("%s %s (%s scope): last audit record %+v, want a denied record for the caller", role, op.name, c.scope, recs)
						}
					}
				}
			}
			rep, err := e.srv.Access.VerifyAudit(context.Background())
			if err != nil || !rep.OK {
				t.Fatalf("audit verify: %+v %v", rep, err)
			}
		})
	}
}

// TestBadTokensAre401AuditedAndChangeNothing: missing, malformed, unknown,
// expired and revoked API tokens, and JWTs (alg none, or signed when no
// OIDC issuer is configured) are each 401, audited, and change no state.
func TestBadTokensAre401AuditedAndChangeNothing(t *testing.T) {
	e := startAuthServer(t)
	e.must(e.admin, "PUT", webPol, policyBody(webVM), 200)
	var created struct {
		Token  string
		Record struct{ ID string }
	}
	json.Unmarshal(e.must(e.admin, "POST", "/drawbridge/v1/tokens", map[string]any{"principal": "temp"}, 201), &created)
	e.must(e.admin, "POST", "/drawbridge/v1/tokens/"+created.Record.ID+"/revoke", nil, 200)
	var short struct{ Token string }
	json.Unmarshal(e.must(e.admin, "POST", "/drawbridge/v1/tokens", map[string]any{"principal": "short", "expires": "1ns"}, 201), &short)

	alg := func(h string) string {
		enc := func(s string) string { return strings.TrimRight(b64(s), "=") }
		return enc(h) + "." + enc(`{"iss":"x","sub":"mallory","aud":"drawbridge","exp":9999999999}`) + "."
	}
	forged := "dbt_" + strings.Repeat("A", 43)
	cases := map[string]string{
		"unknown token":   forged,
		"revoked token":   created.Token,
		"expired token":   short.Token,
		"alg none JWT":    alg(`{"alg":"none","typ":"JWT"}`),
		"malformed token": "dbt_short",
		"garbage":         "not-a-token",
		"wrong scheme":    "",
	}
	before := grantCount(t, e)
	for name, tok := range cases {
		body := map[string]any{"vm": webVM, "ports": []int{22}, "duration": "PT1H", "source": "198.18.5.5"}
		req, _ := http.NewRequest("POST", e.srv.URL+"/drawbridge/v1/requests", bytes.NewReader(mustJSON(body)))
		if name == "wrong scheme" {
			req.Header.Set("Authorization", "Basic YWRtaW46YWRtaW4=")
		} else {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s: status %d, want 401", name, resp.StatusCode)
		}
		recs, _ := e.srv.Access.Audit(context.Background(), auditstore.Filter{Limit: 1})
		if len(recs) != 1 || recs[0].Result != audit.Denied || recs[0].Operation != "authenticate" || !strings.HasPrefix(recs[0].Detail, "401 ") {
			t.Errorf("%s: last audit record %+v, want a denied authenticate record", name, recs)
		}
	}
	if after := grantCount(t, e); after != before {
		t.Fatalf("grants %d -> %d after refused calls", before, after)
	}
}

func TestFailedAuthenticationIsRateLimitedPerSource(t *testing.T) {
	e := startAuthServer(t)
	var got []int
	retry := ""
	for i := 0; i < 12; i++ {
		req, _ := http.NewRequest("GET", e.srv.URL+"/drawbridge/v1/vms", nil)
		req.Header.Set("Authorization", "Bearer dbt_"+strings.Repeat("B", 43))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got = append(got, resp.StatusCode)
		if resp.StatusCode == 429 {
			retry = resp.Header.Get("Retry-After")
		}
	}
	want := "[401 401 401 401 401 401 401 401 401 401 429 429]"
	if fmt.Sprint(got) != want {
		t.Fatalf("statuses %v, want %s", got, want)
	}
	if retry != "6" {
		t.Fatalf("Retry-After = %q, want 6", retry)
	}
	// A valid token from the same source is never refused because someone
	// else there failed (it used to get 429 too), and the source stays limited.
	if st, _, _ := e.call(e.admin, "GET", "/drawbridge/v1/vms", nil); st != 200 {
		t.Fatalf("valid token from a limited source: %d, want 200", st)
	}
	if st, _, _ := e.call("dbt_"+strings.Repeat("C", 43), "GET", "/drawbridge/v1/vms", nil); st != 429 {
		t.Fatalf("bad token after a good one: %d, want 429", st)
	}
}

func TestAgentTokenOnlyForItsVM(t *testing.T) {
	e := startAuthServer(t)
	var out struct{ Token string }
	json.Unmarshal(e.must(e.admin, "POST", "/drawbridge/v1/tokens", map[string]any{"principal": "agent-web", "agentVm": webVM}, 201), &out)
	// Even with Owner, an agent token cannot use the user API.
	e.must(e.admin, "POST", "/drawbridge/v1/roleAssignments", map[string]string{"roleDefinitionName": "Owner", "principalName": "agent-web", "principalType": "User", "scope": "/"}, 201)
	if st, code, _ := e.call(out.Token, "GET", "/drawbridge/v1/vms", nil); st != 403 || code != "AuthorizationFailed" {
		t.Fatalf("agent token on vm list: %d %s, want 403", st, code)
	}
	if st, _, _ := e.call(out.Token, "PUT", webPol, policyBody(webVM)); st != 403 {
		t.Fatalf("agent token on policy put: %d, want 403", st)
	}
}

// A report says what a host enforces (and may carry a drift record for the
// audit log): only the VM's own agent token may send one, not a user who
// can read the VM, however privileged.
func TestOnlyTheAgentTokenReports(t *testing.T) {
	e := startAuthServer(t)
	var out struct{ Token string }
	json.Unmarshal(e.must(e.admin, "POST", "/drawbridge/v1/tokens", map[string]any{"principal": "agent-web", "agentVm": webVM}, 201), &out)
	drift := map[string]any{"vm": webVM, "version": 0, "drift": map[string]any{"time": time.Now().UTC(), "found": "delete table", "restored": "all"}}
	if st, code, _ := e.call(e.admin, "POST", "/drawbridge/v1/agent/report", drift); st != 403 || code != "AuthorizationFailed" {
		t.Fatalf("Owner's user token reporting for a VM: %d %s, want 403 AuthorizationFailed", st, code)
	}
	if n := driftRecords(t, e); n != 0 {
		t.Fatalf("a refused report left %d drift records", n)
	}
	if st, code, msg := e.call(out.Token, "POST", "/drawbridge/v1/agent/report", drift); st != 204 {
		t.Fatalf("the VM's agent token reporting: %d %s %s, want 204", st, code, msg)
	}
	if n := driftRecords(t, e); n != 1 {
		t.Fatalf("the agent's drift report: %d drift records, want 1", n)
	}
}

func driftRecords(t *testing.T, e *httpEnv) int {
	var out struct{ Value []struct{ Operation string } }
	json.Unmarshal(e.must(e.admin, "GET", "/drawbridge/v1/audit", nil, 200), &out)
	n := 0
	for _, r := range out.Value {
		if r.Operation == "drift" {
			n++
		}
	}
	return n
}

func grantCount(t *testing.T, e *httpEnv) int {
	var out struct{ Value []jit.Grant }
	json.Unmarshal(e.must(e.admin, "GET", "/drawbridge/v1/grants", nil, 200), &out)
	return len(out.Value)
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
