package armcompat

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/security/armsecurity"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/jit"
)

func policyName(v vmSpec) string { return "jit-" + v.name }

func policyID(v vmSpec) string {
	return jit.PolicyID(sub, v.rg, v.loc, policyName(v))
}

// portRule is a JIT port in the SDK's model.
func portRule(n int32, proto armsecurity.Protocol) *armsecurity.JitNetworkAccessPortRule {
	return &armsecurity.JitNetworkAccessPortRule{Number: ptr(n), Protocol: ptr(proto),
		AllowedSourceAddressPrefix: ptr("198.18.0.0/15"), MaxRequestAccessDuration: ptr("PT3H")}
}

func policyBody(v vmSpec, ports ...*armsecurity.JitNetworkAccessPortRule) armsecurity.JitNetworkAccessPolicy {
	return armsecurity.JitNetworkAccessPolicy{Kind: ptr("Basic"), Properties: &armsecurity.JitNetworkAccessPolicyProperties{
		VirtualMachines: []*armsecurity.JitNetworkAccessPolicyVirtualMachine{{ID: ptr(vmID(v)), Ports: ports}},
	}}
}

func initiateBody(v vmSpec, port int32, end time.Time) armsecurity.JitNetworkAccessPolicyInitiateRequest {
	return armsecurity.JitNetworkAccessPolicyInitiateRequest{Justification: ptr("armcompat"),
		VirtualMachines: []*armsecurity.JitNetworkAccessPolicyInitiateVirtualMachine{{ID: ptr(vmID(v)),
			Ports: []*armsecurity.JitNetworkAccessPolicyInitiatePort{{Number: ptr(port), EndTimeUTC: ptr(end), AllowedSourceAddressPrefix: ptr("198.18.0.9")}}}}}
}

// responseError asserts err is an azcore.ResponseError with status and code.
func responseError(t *testing.T, what string, err error, status int, code string) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("%s: error %v (%T), want an *azcore.ResponseError", what, err, err)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("%s: ResponseError status %d code %q, want %d %q\n%v", what, re.StatusCode, re.ErrorCode, status, code, err)
	}
	return re
}

// TestSDK drives every operation of JitNetworkAccessPoliciesClient against
// a real server, then holds every response it got to the specification.
func TestSDK(t *testing.T) {
	e := newEnv(t)
	c := e.admin

	// CreateOrUpdate: one policy per VM. Protocols come back as sent.
	protos := armsecurity.PossibleProtocolValues()
	for i, v := range vms {
		proto := protos[i%len(protos)]
		resp, err := c.CreateOrUpdate(e.ctx, v.rg, v.loc, policyName(v), policyBody(v, portRule(22, proto), portRule(3389, armsecurity.ProtocolTCP)), nil)
		if err != nil {
			t.Fatalf("CreateOrUpdate %s: %v", v.name, err)
		}
		p := resp.JitNetworkAccessPolicy
		if got := *p.Properties.VirtualMachines[0].Ports[0].Protocol; got != proto {
			t.Errorf("%s: protocol %q came back as %q", v.name, proto, got)
		}
		if *p.ID != policyID(v) || *p.Name != policyName(v) || *p.Type != "Microsoft.Security/locations/jitNetworkAccessPolicies" ||
			*p.Location != v.loc || *p.Kind != "Basic" || *p.Properties.ProvisioningState != "Succeeded" {
			t.Errorf("%s: read-only fields id %s name %s type %s location %s kind %s state %s", v.name,
				*p.ID, *p.Name, *p.Type, *p.Location, *p.Kind, *p.Properties.ProvisioningState)
		}
	}

	t.Run("Get", func(t *testing.T) {
		v := vms[1]
		resp, err := c.Get(e.ctx, v.rg, v.loc, policyName(v), nil)
		if err != nil {
			t.Fatal(err)
		}
		ports := resp.Properties.VirtualMachines[0].Ports
		if len(ports) != 2 || *ports[0].Protocol != protos[1] || *ports[1].Protocol != armsecurity.ProtocolTCP || *ports[0].MaxRequestAccessDuration != "PT3H" {
			t.Fatalf("ports %+v", ports)
		}
	})

	t.Run("Pagination", func(t *testing.T) { testPagination(t, e) })
	t.Run("ReadOnlyFields", func(t *testing.T) { testReadOnly(t, e) })
	t.Run("Errors", func(t *testing.T) { testErrors(t, e) })
	t.Run("RequestLife", func(t *testing.T) { testRequestLife(t, e) })
	t.Run("DrawbridgeStates", func(t *testing.T) { testDrawbridgeStates(t, e) })
	t.Run("FirewallMappedPort", func(t *testing.T) { testFirewallMappedPort(t, e) })

	t.Run("Delete", func(t *testing.T) {
		v := vms[6]
		if _, err := c.Delete(e.ctx, v.rg, v.loc, policyName(v), nil); err != nil {
			t.Fatal(err)
		}
		_, err := c.Get(e.ctx, v.rg, v.loc, policyName(v), nil)
		responseError(t, "Get after Delete", err, http.StatusNotFound, "NotFound")
		// Deleting what does not exist: 204, which the SDK accepts.
		if _, err := c.Delete(e.ctx, v.rg, v.loc, policyName(v), nil); err != nil {
			t.Fatal(err)
		}
		var codes []int
		for _, x := range e.rec.exchanges() {
			if x.operation == "Delete" {
				codes = append(codes, x.status)
			}
		}
		if !slices.Equal(codes, []int{200, 204}) {
			t.Fatalf("Delete answered %v, want [200 204] (deleted, then not there)", codes)
		}
	})

	// Every operation of the client ran, and each answered its spec status.
	t.Run("StatusCodes", func(t *testing.T) { testStatusCodes(t, e) })
	t.Run("Enums", func(t *testing.T) { testEnums(t, e) })
	t.Run("ModelsKeepFields", func(t *testing.T) { testModelsKeepFields(t, e) })
}

func testPagination(t *testing.T, e *env) {
	c := e.admin
	want := func(keep func(vmSpec) bool) []string {
		var out []string
		for _, v := range vms {
			if keep(v) {
				out = append(out, policyName(v))
			}
		}
		slices.Sort(out)
		return out
	}
	type lister struct {
		name  string
		pages func() (pages int, names []string, err error)
		want  []string
	}
	collect := func(more func() bool, next func() ([]*armsecurity.JitNetworkAccessPolicy, error)) (int, []string, error) {
		pages, names := 0, []string{}
		for more() {
			vs, err := next()
			if err != nil {
				return pages, names, err
			}
			pages++
			if len(vs) > pageSize {
				t.Errorf("a page of %d policies; the page size is %d", len(vs), pageSize)
			}
			for _, p := range vs {
				names = append(names, *p.Name)
			}
		}
		return pages, names, nil
	}
	listers := []lister{
		{"List", func() (int, []string, error) {
			p := c.NewListPager(nil)
			return collect(p.More, func() ([]*armsecurity.JitNetworkAccessPolicy, error) {
				r, err := p.NextPage(e.ctx)
				return r.Value, err
			})
		}, want(func(vmSpec) bool { return true })},
		{"ListByRegion", func() (int, []string, error) {
			p := c.NewListByRegionPager("westeurope", nil)
			return collect(p.More, func() ([]*armsecurity.JitNetworkAccessPolicy, error) {
				r, err := p.NextPage(e.ctx)
				return r.Value, err
			})
		}, want(func(v vmSpec) bool { return v.loc == "westeurope" })},
		{"ListByResourceGroup", func() (int, []string, error) {
			p := c.NewListByResourceGroupPager("rg-a", nil)
			return collect(p.More, func() ([]*armsecurity.JitNetworkAccessPolicy, error) {
				r, err := p.NextPage(e.ctx)
				return r.Value, err
			})
		}, want(func(v vmSpec) bool { return v.rg == "rg-a" })},
		{"ListByResourceGroupAndRegion", func() (int, []string, error) {
			p := c.NewListByResourceGroupAndRegionPager("rg-a", "northeurope", nil)
			return collect(p.More, func() ([]*armsecurity.JitNetworkAccessPolicy, error) {
				r, err := p.NextPage(e.ctx)
				return r.Value, err
			})
		}, want(func(v vmSpec) bool { return v.rg == "rg-a" && v.loc == "northeurope" })},
	}
	for _, l := range listers {
		pages, names, err := l.pages()
		if err != nil {
			t.Fatalf("%s: %v", l.name, err)
		}
		wantPages := (len(l.want) + pageSize - 1) / pageSize
		if pages != wantPages || !slices.Equal(names, l.want) {
			t.Errorf("%s: %d pages %v, want %d pages %v (in ID order, none twice)", l.name, pages, names, wantPages, l.want)
		}
	}
	if len(listers[0].want) < 3*pageSize {
		t.Fatal("the test needs lists of several pages")
	}

	// A policy deleted after the first page neither hides nor repeats
	// another: the page token is the last ID, not an offset.
	all := listers[0].want
	p := c.NewListPager(nil)
	first, err := p.NextPage(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	gone := vms[slices.IndexFunc(vms, func(v vmSpec) bool { return policyName(v) == *first.Value[0].Name })]
	if st, out := e.raw("DELETE", policyID(gone), ""); st != 200 {
		t.Fatalf("delete %s: %d %v", policyID(gone), st, out)
	}
	seen := []string{}
	for _, pol := range first.Value {
		seen = append(seen, *pol.Name)
	}
	for p.More() {
		page, err := p.NextPage(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, pol := range page.Value {
			seen = append(seen, *pol.Name)
		}
	}
	if !slices.Equal(seen, all) {
		t.Errorf("paging across a delete saw %v, want %v", seen, all)
	}
	if _, err := c.CreateOrUpdate(e.ctx, gone.rg, gone.loc, policyName(gone), policyBody(gone, portRule(22, armsecurity.ProtocolTCP), portRule(3389, armsecurity.ProtocolTCP)), nil); err != nil {
		t.Fatal(err)
	}
}

// testReadOnly sends back what Get answered with every read-only field
// rewritten: the server keeps its own values, and the requests in a PUT body
// open nothing.
func testReadOnly(t *testing.T, e *env) {
	c := e.admin
	v := vms[2]
	got, err := c.Get(e.ctx, v.rg, v.loc, policyName(v), nil)
	if err != nil {
		t.Fatal(err)
	}
	body := got.JitNetworkAccessPolicy
	body.ID, body.Name, body.Type = ptr("/subscriptions/x/resourceGroups/y/providers/Microsoft.Security/locations/z/jitNetworkAccessPolicies/other"), ptr("other"), ptr("Other/type")
	body.Properties.ProvisioningState = ptr("Failed")
	past := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	initiated, reason := armsecurity.StatusInitiated, armsecurity.StatusReasonUserRequested
	body.Properties.Requests = []*armsecurity.JitNetworkAccessRequest{{Requestor: ptr("mallory"), StartTimeUTC: ptr(past),
		VirtualMachines: []*armsecurity.JitNetworkAccessRequestVirtualMachine{{ID: ptr(vmID(v)), Ports: []*armsecurity.JitNetworkAccessRequestPort{{
			Number: ptr[int32](22), EndTimeUTC: ptr(time.Now().Add(time.Hour)), Status: &initiated, StatusReason: &reason, AllowedSourceAddressPrefix: ptr("*")}}}}}}
	body.Properties.VirtualMachines[0].Ports = append(body.Properties.VirtualMachines[0].Ports, portRule(5985, armsecurity.ProtocolAll))
	resp, err := c.CreateOrUpdate(e.ctx, v.rg, v.loc, policyName(v), body, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := resp.JitNetworkAccessPolicy
	if *p.ID != policyID(v) || *p.Name != policyName(v) || *p.Type != "Microsoft.Security/locations/jitNetworkAccessPolicies" || *p.Properties.ProvisioningState != "Succeeded" {
		t.Errorf("read-only fields taken from the body: id %s name %s type %s state %s", *p.ID, *p.Name, *p.Type, *p.Properties.ProvisioningState)
	}
	if len(p.Properties.Requests) != 0 {
		t.Errorf("requests in a PUT body were stored: %d", len(p.Properties.Requests))
	}
	if n := len(p.Properties.VirtualMachines[0].Ports); n != 3 {
		t.Errorf("%d ports after adding one to 2", n)
	}
	if st, out := e.raw("GET", "/drawbridge/v1/grants?vm="+vmID(v), ""); st != 200 || len(out["value"].([]any)) != 0 {
		t.Errorf("a PUT body's requests opened grants: %d %v", st, out)
	}
	// The location is in the path; a body naming another is refused.
	body.Location = ptr("eastus")
	_, err = c.CreateOrUpdate(e.ctx, v.rg, v.loc, policyName(v), body, nil)
	responseError(t, "PUT with another location", err, http.StatusBadRequest, "BadRequest")
}

func testErrors(t *testing.T, e *env) {
	c := e.admin
	v := vms[0]
	_, err := c.Get(e.ctx, v.rg, v.loc, "no-such-policy", nil)
	responseError(t, "Get of a missing policy", err, http.StatusNotFound, "NotFound")
	_, err = e.client("not-a-token", "").Get(e.ctx, v.rg, v.loc, policyName(v), nil)
	responseError(t, "Get with a bad token", err, http.StatusUnauthorized, "AuthenticationFailed")

	// A reader may read, not write or initiate: 403 AuthorizationFailed.
	reader := e.client(e.tokenFor("reader@armcompat", "Reader", "/subscriptions/"+sub), "")
	if _, err := reader.Get(e.ctx, v.rg, v.loc, policyName(v), nil); err != nil {
		t.Fatalf("reader Get: %v", err)
	}
	_, err = reader.CreateOrUpdate(e.ctx, v.rg, v.loc, policyName(v), policyBody(v, portRule(22, armsecurity.ProtocolTCP)), nil)
	responseError(t, "reader CreateOrUpdate", err, http.StatusForbidden, "AuthorizationFailed")
	_, err = reader.Initiate(e.ctx, v.rg, v.loc, policyName(v), initiateBody(v, 22, time.Now().Add(time.Hour)), nil)
	responseError(t, "reader Initiate", err, http.StatusForbidden, "AuthorizationFailed")

	// A source outside the policy's allowed prefixes: 403 naming the field.
	in := initiateBody(v, 22, time.Now().Add(time.Hour))
	in.VirtualMachines[0].Ports[0].AllowedSourceAddressPrefix = ptr("203.0.113.7")
	_, err = c.Initiate(e.ctx, v.rg, v.loc, policyName(v), in, nil)
	if re := responseError(t, "Initiate from outside the allowed prefixes", err, http.StatusForbidden, "Forbidden"); !strings.Contains(re.Error(), `"target": "virtualMachines[0].ports[0].allowedSourceAddressPrefix"`) {
		t.Errorf("403 does not name the field:\n%v", re)
	}

	// allowedSourceAddressPrefix and allowedSourceAddressPrefixes together: 400 naming the field.
	both := portRule(22, armsecurity.ProtocolTCP)
	both.AllowedSourceAddressPrefixes = []*string{ptr("198.18.0.0/16")}
	_, err = c.CreateOrUpdate(e.ctx, v.rg, v.loc, policyName(v), policyBody(v, both), nil)
	if re := responseError(t, "both source fields", err, http.StatusBadRequest, "BadRequest"); !strings.Contains(re.Error(), `"target": "properties.virtualMachines[0].ports[0].allowedSourceAddressPrefixes"`) {
		t.Errorf("400 does not name the field:\n%v", re)
	}
	// Each alone is fine.
	only := portRule(22, armsecurity.ProtocolTCP)
	only.AllowedSourceAddressPrefix, only.AllowedSourceAddressPrefixes = nil, []*string{ptr("198.18.0.0/16"), ptr("2001:2::/48")}
	if _, err := c.CreateOrUpdate(e.ctx, v.rg, v.loc, policyName(v), policyBody(v, only, portRule(3389, armsecurity.ProtocolTCP)), nil); err != nil {
		t.Fatalf("allowedSourceAddressPrefixes alone: %v", err)
	}
	// An api-version no Azure region serves: 400 NoRegisteredProviderFound.
	_, err = e.client(e.srv.AdminToken, "2099-01-01").Get(e.ctx, v.rg, v.loc, policyName(v), nil)
	responseError(t, "api-version 2099-01-01", err, http.StatusBadRequest, "NoRegisteredProviderFound")
	// The preview version older SDKs send is served.
	if _, err := e.client(e.srv.AdminToken, "2015-06-01-preview").Get(e.ctx, v.rg, v.loc, policyName(v), nil); err != nil {
		t.Fatalf("api-version 2015-06-01-preview: %v", err)
	}
}

// findPort returns the port of the request that started at start.
func findPort(t *testing.T, p armsecurity.JitNetworkAccessPolicy, start time.Time, number int32) *armsecurity.JitNetworkAccessRequestPort {
	t.Helper()
	for _, rq := range p.Properties.Requests {
		if rq.StartTimeUTC.Equal(start) {
			for _, port := range rq.VirtualMachines[0].Ports {
				if *port.Number == number {
					return port
				}
			}
		}
	}
	t.Fatalf("no request started at %s for port %d in the policy", start, number)
	return nil
}

// testRequestLife follows requests from Initiated to each end the
// specification names: Expired, NewerRequestInitiated, UserRequested.
func testRequestLife(t *testing.T, e *env) {
	c := e.admin
	v := vms[3]
	get := func() armsecurity.JitNetworkAccessPolicy {
		t.Helper()
		r, err := c.Get(e.ctx, v.rg, v.loc, policyName(v), nil)
		if err != nil {
			t.Fatal(err)
		}
		return r.JitNetworkAccessPolicy
	}
	initiate := func(port int32, end time.Time) armsecurity.JitNetworkAccessRequest {
		t.Helper()
		before := time.Now().Add(-time.Second)
		r, err := c.Initiate(e.ctx, v.rg, v.loc, policyName(v), initiateBody(v, port, end), nil)
		if err != nil {
			t.Fatal(err)
		}
		rq := r.JitNetworkAccessRequest
		p := rq.VirtualMachines[0].Ports[0]
		if *rq.Requestor != access.BootstrapPrincipal || rq.StartTimeUTC.Before(before) || rq.StartTimeUTC.After(time.Now().Add(time.Second)) ||
			*rq.Justification != "armcompat" || *p.Status != armsecurity.StatusInitiated || *p.StatusReason != armsecurity.StatusReasonUserRequested ||
			!p.EndTimeUTC.Equal(end.Truncate(time.Second)) && !p.EndTimeUTC.Equal(end) || *p.AllowedSourceAddressPrefix != "198.18.0.9" {
			t.Fatalf("Initiate answered requestor %s start %s status %s/%s end %s (asked %s) source %s", *rq.Requestor, rq.StartTimeUTC,
				*p.Status, *p.StatusReason, p.EndTimeUTC, end, *p.AllowedSourceAddressPrefix)
		}
		if p.MappedPort != nil {
			t.Errorf("mappedPort %d, but no firewall is in front of the VM", *p.MappedPort)
		}
		return rq
	}

	// Expired: a short request reaches its end time.
	short := initiate(22, time.Now().Add(2*time.Second))
	if p := findPort(t, get(), *short.StartTimeUTC, 22); *p.Status != armsecurity.StatusInitiated {
		t.Fatalf("right after Initiate: %s/%s", *p.Status, *p.StatusReason)
	}
	// Superseded: a newer request for the same VM and port.
	older := initiate(3389, time.Now().Add(time.Hour))
	time.Sleep(10 * time.Millisecond)
	newer := initiate(3389, time.Now().Add(2*time.Hour))
	pol := get()
	if p := findPort(t, pol, *older.StartTimeUTC, 3389); *p.Status != armsecurity.StatusRevoked || *p.StatusReason != armsecurity.StatusReasonNewerRequestInitiated {
		t.Errorf("older request: %s/%s, want Revoked/NewerRequestInitiated", *p.Status, *p.StatusReason)
	}
	// Revoked early by a user (drawbridge's revoke; the SDK has no call for it).
	st, grants := e.raw("GET", "/drawbridge/v1/grants?active=true&vm="+vmID(v), "")
	if st != 200 {
		t.Fatalf("grants: %d", st)
	}
	for _, g := range grants["value"].([]any) {
		if g := g.(map[string]any); g["port"] == float64(3389) {
			if st, out := e.raw("POST", "/drawbridge/v1/grants/"+g["id"].(string)+"/revoke", ""); st != 200 {
				t.Fatalf("revoke: %d %v", st, out)
			}
		}
	}
	if p := findPort(t, get(), *newer.StartTimeUTC, 3389); *p.Status != armsecurity.StatusRevoked || *p.StatusReason != armsecurity.StatusReasonUserRequested {
		t.Errorf("revoked request: %s/%s, want Revoked/UserRequested", *p.Status, *p.StatusReason)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		p := findPort(t, get(), *short.StartTimeUTC, 22)
		if *p.Status == armsecurity.StatusRevoked {
			if *p.StatusReason != armsecurity.StatusReasonExpired {
				t.Errorf("short request ended with %s, want Expired", *p.StatusReason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("short request still %s/%s 13 s after its end time", *p.Status, *p.StatusReason)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// testDrawbridgeStates covers states the specification has no value for: a
// grant ended because its port left the policy, and a request waiting for
// approval. The SDK still sees spec values (raw bodies are checked in Enums).
func testDrawbridgeStates(t *testing.T, e *env) {
	c := e.admin
	v := vms[4]
	r, err := c.Initiate(e.ctx, v.rg, v.loc, policyName(v), initiateBody(v, 3389, time.Now().Add(time.Hour)), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := *r.StartTimeUTC
	// Port 3389 leaves the policy: its grant ends (drawbridge: PolicyRemoved).
	if _, err := c.CreateOrUpdate(e.ctx, v.rg, v.loc, policyName(v), policyBody(v, portRule(22, armsecurity.ProtocolTCP)), nil); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(e.ctx, v.rg, v.loc, policyName(v), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := findPort(t, got.JitNetworkAccessPolicy, start, 3389); *p.Status != armsecurity.StatusRevoked || *p.StatusReason != armsecurity.StatusReasonUserRequested {
		t.Errorf("grant of a port removed from the policy: %s/%s, want Revoked/UserRequested", *p.Status, *p.StatusReason)
	}
	// A port that needs approval (drawbridge's extension): the request waits.
	st, out := e.raw("PUT", policyID(v)+"?api-version=2020-01-01", `{"properties":{"virtualMachines":[{"id":"`+vmID(v)+`","ports":[
		{"number":22,"protocol":"TCP","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H","requireApproval":{"approvers":"ops","count":1}}]}]}}`)
	if st != 200 {
		t.Fatalf("PUT with requireApproval: %d %v", st, out)
	}
	// The SDK reads it back; its model has no requireApproval (an extension),
	// so a Get → CreateOrUpdate round trip through the SDK drops it.
	if got, err := c.Get(e.ctx, v.rg, v.loc, policyName(v), nil); err != nil || len(got.Properties.VirtualMachines[0].Ports) != 1 {
		t.Fatalf("Get of the approval policy: %v", err)
	}
	pending, err := c.Initiate(e.ctx, v.rg, v.loc, policyName(v), initiateBody(v, 22, time.Now().Add(time.Hour)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := pending.VirtualMachines[0].Ports[0]; *p.Status != armsecurity.StatusInitiated || *p.StatusReason != armsecurity.StatusReasonUserRequested {
		t.Errorf("pending request: %s/%s", *p.Status, *p.StatusReason)
	}
}
