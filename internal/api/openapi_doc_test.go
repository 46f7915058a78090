package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

var updateOpenAPI = flag.Bool("update-openapi", false, "rewrite openapi.json from the route table and the Go types")

// op describes one route for the document: the ServeMux pattern, what it
// decodes and what it answers (a nil type: no body).
type op struct {
	pattern string
	summary string
	query   []param
	in      reflect.Type
	inMedia []string // default application/json
	inOpt   bool     // body may be empty
	status  int
	out     reflect.Type
	media   string // default application/json
	empty   []int  // further success statuses answered without a body
}

type param struct {
	name, typ, desc string
	required        bool
}

func typ[T any]() reflect.Type { return reflect.TypeFor[T]() }

type statusBody struct {
	Status string `json:"status"`
}

type readyBody struct {
	Status  string   `json:"status"`
	Reasons []string `json:"reasons,omitempty"`
}

type inventoryCounts struct {
	VMs            int `json:"vms"`
	NSGs           int `json:"networkSecurityGroups"`
	SecurityGroups int `json:"securityGroups"`
	Removed        int `json:"removed,omitempty"` // with prune
}

type securityGroupsBody struct {
	SecurityGroups []netrule.SecurityGroup `json:"SecurityGroups"`
}

var apiVersion = param{name: "api-version", typ: "string", desc: "Azure API version (accepted and ignored)"}

const azPolicies = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies"

// routes is the whole REST API. TestOpenAPIDocument checks that it names
// exactly the routes the handlers register.
var routes = []op{
	{pattern: "PUT " + azPolicies + "/{name}", summary: "Create or replace a JIT policy (Azure jitNetworkAccessPolicies)", query: []param{apiVersion}, in: typ[PolicyResource](), status: 200, out: typ[PolicyResource]()},
	{pattern: "GET " + azPolicies + "/{name}", summary: "Get a JIT policy with its recent requests", query: []param{apiVersion}, status: 200, out: typ[PolicyResource]()},
	{pattern: "DELETE " + azPolicies + "/{name}", summary: "Delete a JIT policy (its grants end with PolicyRemoved); Azure answers 204 for a policy that does not exist", query: []param{apiVersion}, status: 200, empty: []int{204}},
	{pattern: "POST " + azPolicies + "/{name}/initiate", summary: "Request access (Azure initiate)", query: []param{apiVersion}, in: typ[jit.InitiateInput](), status: 202, out: typ[RequestResource]()},
	{pattern: "GET " + azPolicies, summary: "List the policies of a resource group in a location", query: []param{apiVersion}, status: 200, out: typ[ListResponse[PolicyResource]]()},
	{pattern: "GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/jitNetworkAccessPolicies", summary: "List the policies of a resource group", query: []param{apiVersion}, status: 200, out: typ[ListResponse[PolicyResource]]()},
	{pattern: "GET /subscriptions/{sub}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies", summary: "List the policies of a subscription in a location", query: []param{apiVersion}, status: 200, out: typ[ListResponse[PolicyResource]]()},
	{pattern: "GET /subscriptions/{sub}/providers/Microsoft.Security/jitNetworkAccessPolicies", summary: "List the policies of a subscription", query: []param{apiVersion}, status: 200, out: typ[ListResponse[PolicyResource]]()},
	{pattern: "GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkSecurityGroups/{name}", summary: "Get a simulated NSG (Azure networkSecurityGroups)", query: []param{apiVersion}, status: 200, out: typ[azureNSGResource]()},

	{pattern: "GET /drawbridge/v1/policies", summary: "List every policy", status: 200, out: typ[ListResponse[PolicyResource]]()},
	{pattern: "GET /drawbridge/v1/vms", query: []param{{name: "$top", typ: "string", desc: "page size, 1 to 5000 (default 1000)"}, {name: "$skipToken", typ: "string", desc: "from nextLink"}}, summary: "List the inventory's VMs with their policy and active grants", status: 200, out: typ[ListResponse[VMSummary]]()},
	{pattern: "GET /drawbridge/v1/network", summary: "A VM's simulated firewall as its provider sees it", query: []param{{name: "vm", typ: "string", desc: "VM resource ID", required: true}}, status: 200, out: typ[sim.View]()},
	{pattern: "GET /drawbridge/v1/aws/security-groups", summary: "An AWS instance's simulated security groups (EC2 DescribeSecurityGroups shape)", query: []param{{name: "vm", typ: "string", desc: "instance resource ID", required: true}}, status: 200, out: typ[securityGroupsBody]()},
	{pattern: "GET /drawbridge/v1/grants", summary: "List grants, newest first", query: []param{{name: "$top", typ: "string", desc: "page size, 1 to 5000 (default 1000)"}, {name: "$skipToken", typ: "string", desc: "from nextLink"}, {name: "vm", typ: "string"}, {name: "active", typ: "string", desc: "true: only grants in force"}, {name: "limit", typ: "string", desc: "non-negative integer"}}, status: 200, out: typ[ListResponse[GrantView]]()},
	{pattern: "POST /drawbridge/v1/grants/{id}/revoke", summary: "End a grant early", status: 200, out: typ[jit.Grant]()},
	{pattern: "POST /drawbridge/v1/requests", summary: "Request access in drawbridge's short form", in: typ[SimpleRequest](), status: 202, out: typ[RequestResource]()},
	{pattern: "POST /drawbridge/v1/inventory", summary: "Replace the inventory (YAML or JSON, validated whole)", query: []param{{name: "prune", typ: "string", desc: "a discovery's provider (azure): its VMs under scope that the document lacks leave the inventory"}, {name: "scope", typ: "string", desc: "with prune: the resource ID prefix the discovery covers"}}, in: typ[inventory.Inventory](), inMedia: []string{"application/json", "application/yaml"}, status: 200, out: typ[inventoryCounts]()},
	{pattern: "GET /drawbridge/v1/assessment", summary: "Which machines need JIT", query: []param{{name: "scope", typ: "string", desc: "resource ID prefix (default /)"}, {name: "$top", typ: "string", desc: "VMs a page, 1 to 5000 (default 1000); summary counts every VM"}, {name: "$skipToken", typ: "string", desc: "from nextLink"}}, status: 200, out: typ[Assessment]()},
	{pattern: "POST /drawbridge/v1/assessment/fix", summary: "Guard the unhealthy machines", query: []param{{name: "scope", typ: "string"}}, in: typ[AssessmentFixRequest](), inOpt: true, status: 200, out: typ[AssessmentFixResponse]()},

	{pattern: "GET /drawbridge/v1/requests/pending", query: []param{{name: "$top", typ: "string", desc: "page size, 1 to 5000 (default 1000)"}, {name: "$skipToken", typ: "string", desc: "from nextLink"}}, summary: "List requests waiting for approval", status: 200, out: typ[ListResponse[jit.PendingRequest]]()},
	{pattern: "GET /drawbridge/v1/requests/{id}", summary: "Get a request that needed approval", status: 200, out: typ[jit.PendingRequest]()},
	{pattern: "POST /drawbridge/v1/requests/{id}/approve", summary: "Approve a pending request", in: typ[DenyRequest](), inOpt: true, status: 200, out: typ[ApprovalResponse]()},
	{pattern: "POST /drawbridge/v1/requests/{id}/deny", summary: "Deny a pending request", in: typ[DenyRequest](), inOpt: true, status: 200, out: typ[ApprovalResponse]()},
	{pattern: "GET /drawbridge/v1/tokens", summary: "List API tokens (never their values)", status: 200, out: typ[ListResponse[access.TokenInfo]]()},
	{pattern: "POST /drawbridge/v1/tokens", summary: "Create an API token (its value is shown once)", in: typ[TokenCreateRequest](), status: 201, out: typ[TokenCreateResponse]()},
	{pattern: "POST /drawbridge/v1/tokens/{id}/revoke", summary: "Revoke an API token", status: 200, out: typ[access.TokenInfo]()},
	{pattern: "GET /drawbridge/v1/roles", summary: "List role definitions", status: 200, out: typ[ListResponse[rbac.RoleDefinition]]()},
	{pattern: "GET /drawbridge/v1/roles/{name}", summary: "Get a role definition", status: 200, out: typ[rbac.RoleDefinition]()},
	{pattern: "POST /drawbridge/v1/roles", summary: "Create a custom role (Azure PowerShell's shape)", in: typ[rbac.RoleDefinition](), status: 201, out: typ[rbac.RoleDefinition]()},
	{pattern: "GET /drawbridge/v1/roleAssignments", summary: "List role assignments", status: 200, out: typ[ListResponse[AssignmentBody]]()},
	{pattern: "POST /drawbridge/v1/roleAssignments", summary: "Assign a role at a scope", in: typ[AssignmentBody](), status: 201, out: typ[AssignmentBody]()},
	{pattern: "DELETE /drawbridge/v1/roleAssignments/{id}", summary: "Remove a role assignment", status: 200, out: typ[AssignmentBody]()},
	{pattern: "GET /drawbridge/v1/audit", summary: "Read the audit log", query: []param{{name: "$top", typ: "string", desc: "page size, 1 to 5000 (default 1000)"}, {name: "$skipToken", typ: "string", desc: "from nextLink"}, {name: "principal", typ: "string"}, {name: "vm", typ: "string"}, {name: "since", typ: "string", desc: "RFC 3339 time"}, {name: "limit", typ: "string", desc: "non-negative integer"}}, status: 200, out: typ[ListResponse[audit.Record]]()},
	{pattern: "GET /drawbridge/v1/audit/checkpoints", summary: "List the audit log's signed checkpoints", query: []param{{name: "$top", typ: "string", desc: "page size, 1 to 5000"}, {name: "$skipToken", typ: "string", desc: "from nextLink"}}, status: 200, out: typ[ListResponse[audit.Checkpoint]]()},
	{pattern: "GET /drawbridge/v1/audit/checkpoints/latest", summary: "The newest signed head of the audit log", status: 200, out: typ[audit.Checkpoint]()},
	{pattern: "GET /drawbridge/v1/audit/verify", summary: "Verify the audit log's hash chain", status: 200, out: typ[auditstore.Report]()},
	{pattern: "GET /drawbridge/v1/agent/stream", summary: "An agent's stream of its VM's desired state (NDJSON: snapshot and heartbeat lines)", query: []param{{name: "vm", typ: "string", required: true}}, status: 200, media: "application/x-ndjson"},
	{pattern: "POST /drawbridge/v1/agent/report", summary: "An agent reports the grants its kernel enforces", in: typ[agenthub.Report](), status: 204},
	{pattern: "GET /healthz", summary: "Liveness", status: 200, out: typ[statusBody]()},
}

// opsRoutes are served beside the API by internal/server, without authentication.
var opsRoutes = []op{
	{pattern: "GET /readyz", summary: "Readiness: 503 with the reasons while the store, the migrations or the expiry job are not right", status: 200, out: typ[readyBody]()},
	{pattern: "GET /metrics", summary: "Prometheus metrics (text exposition format)", status: 200, media: "text/plain"},
	{pattern: "GET /openapi.json", summary: "This document", status: 200},
	{pattern: "GET /drawbridge/v1/login", summary: "How the CLI signs in: the OIDC issuer and public client for the device authorization grant (empty without an issuer: API tokens only)", status: 200, out: typ[LoginConfig]()},
}

var pathParam = regexp.MustCompile(`\{([^}]+)\}`)

func buildOpenAPI() ([]byte, error) {
	g := &schemaGen{defs: map[string]any{}}
	g.defs["ErrorResponse"] = nil
	g.defs["ErrorResponse"] = g.object(typ[ErrorResponse](), false)
	paths := map[string]map[string]any{}
	all := append(append([]op{}, routes...), opsRoutes...)
	for _, o := range all {
		method, path, _ := strings.Cut(o.pattern, " ")
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range o.query {
			p := map[string]any{"name": q.name, "in": "query", "required": q.required, "schema": map[string]any{"type": q.typ}}
			if q.desc != "" {
				p["description"] = q.desc
			}
			params = append(params, p)
		}
		operation := map[string]any{
			"operationId": operationID(o.pattern),
			"summary":     o.summary,
			"responses":   responses(g, o),
		}
		if len(params) > 0 {
			operation["parameters"] = params
		}
		if o.in != nil {
			media := o.inMedia
			if media == nil {
				media = []string{"application/json"}
			}
			content := map[string]any{}
			for _, m := range media {
				content[m] = map[string]any{"schema": g.schema(o.in, true)}
			}
			operation["requestBody"] = map[string]any{"required": !o.inOpt, "content": content}
		}
		if strings.HasPrefix(o.pattern, "GET /healthz") || contains(opsRoutes, o.pattern) {
			operation["security"] = []any{}
		}
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(method)] = operation
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "drawbridge",
			"version": "1",
			"description": "Just-in-time access to management ports. The Azure routes take the shapes of Azure's " +
				"Microsoft.Security jitNetworkAccessPolicies API; /drawbridge/v1 is drawbridge's own. Every error is " +
				"Azure's envelope {\"error\":{\"code\",\"message\",\"target\"}}. Generated from the handlers' Go types " +
				"(go test ./internal/api -run TestOpenAPIDocument -update-openapi).",
		},
		"security": []any{map[string]any{"bearer": []any{}}},
		"paths":    paths,
		"components": map[string]any{
			"schemas":         g.defs,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "an API token, or an OIDC ID token when the server accepts them"}},
		},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	err := enc.Encode(doc)
	return buf.Bytes(), err
}

func contains(ops []op, pattern string) bool {
	for _, o := range ops {
		if o.pattern == pattern {
			return true
		}
	}
	return false
}

func responses(g *schemaGen, o op) map[string]any {
	ok := map[string]any{"description": o.summary}
	switch {
	case o.out != nil:
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.schema(o.out, false)}}
	case o.media != "":
		ok["content"] = map[string]any{o.media: map[string]any{"schema": map[string]any{"type": "string"}}}
	case o.pattern == "GET /openapi.json":
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
	}
	out := map[string]any{strconv.Itoa(o.status): ok}
	for _, st := range o.empty {
		out[strconv.Itoa(st)] = map[string]any{"description": http.StatusText(st)}
	}
	out["default"] = map[string]any{"description": "an error (Azure's envelope)",
		"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/ErrorResponse"}}}}
	if o.pattern == "GET /readyz" {
		out["503"] = map[string]any{"description": "not ready", "content": map[string]any{"application/json": map[string]any{"schema": g.schema(typ[readyBody](), false)}}}
	}
	return out
}

// operationID turns a pattern into a stable identifier.
func operationID(pattern string) string {
	method, path, _ := strings.Cut(pattern, " ")
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || strings.HasPrefix(seg, "{") || seg == "subscriptions" || seg == "providers" || seg == "drawbridge" || seg == "v1" {
			continue
		}
		seg = strings.NewReplacer(".", "", "-", "").Replace(seg)
		b.WriteString(strings.ToUpper(seg[:1]) + seg[1:])
	}
	if strings.Contains(path, "{name}") && !strings.HasSuffix(path, "/initiate") {
		b.WriteString("ByName")
	}
	if strings.Contains(path, "{id}") {
		b.WriteString("ByID")
	}
	return b.String()
}

// registered returns the patterns the handlers register, read from the
// package's sources (ServeMux cannot list them).
func registered(t *testing.T) []string {
	t.Helper()
	files, _ := os.ReadDir(".")
	re := regexp.MustCompile(`HandleFunc\("([A-Z]+ )"(\s*\+\s*policyBase)?\s*(\+\s*"([^"]*)")?|HandleFunc\("([A-Z]+ [^"]+)"`)
	var out []string
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".go") || strings.HasSuffix(f.Name(), "_test.go") {
			continue
		}
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			if m[5] != "" {
				out = append(out, m[5])
				continue
			}
			p := m[1]
			if m[2] != "" {
				p += azPolicies
			}
			out = append(out, p+m[4])
		}
	}
	sort.Strings(out)
	return out
}

// TestOpenAPIDocument: openapi.json is what the route table and the Go
// types give, and the table names every route the handlers register.
func TestOpenAPIDocument(t *testing.T) {
	var inTable []string
	for _, o := range routes {
		inTable = append(inTable, o.pattern)
	}
	sort.Strings(inTable)
	if got, want := strings.Join(inTable, "\n"), strings.Join(registered(t), "\n"); got != want {
		t.Fatalf("the OpenAPI route table and the registered routes differ:\ntable:\n%s\n\nregistered:\n%s", got, want)
	}
	doc, err := buildOpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(doc, OpenAPIDocument()) {
		return
	}
	if *updateOpenAPI {
		if err := os.WriteFile("openapi.json", doc, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("openapi.json is out of date; regenerate it with go test ./internal/api -run TestOpenAPIDocument -update-openapi")
}
