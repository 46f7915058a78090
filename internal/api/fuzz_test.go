package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/clock"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/store/memstore"
)

// fuzzEnv is the API in-process (no sockets) with the sample inventory and
// a policy on web-01 guarding 22 and 3389; it is rebuilt every 200 calls so
// that accepted requests do not pile up state.
type fuzzEnv struct {
	h     http.Handler
	calls int
}

func (e *fuzzEnv) reset(t testing.TB) {
	st := memstore.New()
	simProv := sim.New(st)
	n := 0
	svc := jit.NewService(jit.Config{Store: st, Providers: jit.ProviderMap{inventory.ProviderSim: simProv}, Clock: clock.Real{},
		NewID: func() string { n++; return fmt.Sprintf("g%04d", n) }})
	if err := svc.ApplyInventory(context.Background(), inventory.Sample()); err != nil {
		t.Fatal(err)
	}
	e.h = api.New(api.Config{Service: svc, Network: simProv}).Handler()
	body := strings.Replace(azurePolicyBody(web01, 22), `"ports": [`,
		`"ports": [{"number": 3389, "protocol": "TCP", "allowedSourceAddressPrefixes": ["198.18.0.0/15"], "maxRequestAccessDuration": "PT1H"},`, 1)
	if code, resp := e.do("PUT", polURL, body); code != 200 {
		t.Fatalf("fuzz env policy: %d %s", code, resp)
	}
	e.calls = 0
}

func (e *fuzzEnv) do(method, path, body string) (int, []byte) {
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec.Code, rec.Body.Bytes()
}

func (e *fuzzEnv) snapshot() string {
	var b strings.Builder
	for _, p := range []string{"/drawbridge/v1/grants", "/drawbridge/v1/policies", "/drawbridge/v1/network?vm=" + web01} {
		_, body := e.do("GET", p, "")
		b.Write(body)
	}
	return b.String()
}

// check sends body and holds the API to its contract for bad input: never a
// 5xx, always a JSON answer, a refusal in the error envelope naming a code
// and a message, and no state change.
func (e *fuzzEnv) check(t *testing.T, method, path, body string) {
	if e.h == nil || e.calls >= 200 {
		e.reset(t)
	}
	e.calls++
	before := e.snapshot()
	code, resp := e.do(method, path, body)
	if code >= 500 {
		t.Fatalf("%s %s %q: %d %s", method, path, body, code, resp)
	}
	if !json.Valid(resp) {
		t.Fatalf("%s %s %q: %d, answer is not JSON: %q", method, path, body, code, resp)
	}
	if code < 400 {
		return
	}
	var env api.ErrorResponse
	if err := json.Unmarshal(resp, &env); err != nil || env.Error.Code == "" || env.Error.Message == "" {
		t.Fatalf("%s %s %q: %d without the error envelope: %s", method, path, body, code, resp)
	}
	if after := e.snapshot(); after != before {
		t.Fatalf("%s %s %q: refused with %d but the state changed", method, path, body, code)
	}
}

// FuzzInitiateBody fuzzes Azure's initiate body.
func FuzzInitiateBody(f *testing.F) {
	for _, s := range []string{
		`{"virtualMachines":[{"id":"` + web01 + `","ports":[{"number":22,"duration":"PT1H","allowedSourceAddressPrefix":"198.18.0.7"}]}],"justification":"x"}`,
		`{"virtualMachines":[{"id":"` + web01 + `","ports":[{"number":22,"endTimeUtc":"2099-01-01T00:00:00Z","allowedSourceAddressPrefix":"198.18.0.7"}]}]}`,
		`{"virtualMachines":[{"id":"` + web01 + `","ports":[{"number":3389,"duration":"30m","allowedSourceAddressPrefix":"198.18.1.0/24"}]}]}`,
		`{"virtualMachines":[{"id":"` + web01 + `","ports":[{"number":22,"duration":"P213504D","allowedSourceAddressPrefix":"198.18.0.7"}]}]}`,
		`{"virtualMachines":[]}`, `{}`, ``, `null`, `[]`, `{"virtualMachines":[{"id":"` + web01 + `","ports":[{"number":22}]}]}`,
	} {
		f.Add(s)
	}
	e := &fuzzEnv{}
	f.Fuzz(func(t *testing.T, body string) { e.check(t, "POST", polURL+"/initiate", body) })
}

// FuzzPolicyBody fuzzes Azure's jitNetworkAccessPolicies PUT body.
func FuzzPolicyBody(f *testing.F) {
	f.Add(azurePolicyBody(web01, 22))
	f.Add(azurePolicyBody(win01, 3389))
	f.Add(strings.Replace(azurePolicyBody(web01, 22), `"PT3H"`, `"P854016D"`, 1))
	f.Add(strings.Replace(azurePolicyBody(web01, 22), `"allowedSourceAddressPrefix": "*"`, `"allowedSourceAddressPrefixes": ["10.0.0.0/8", "2001:2::/48"]`, 1))
	f.Add(`{"properties":{"virtualMachines":[{"id":"` + web01 + `","ports":[{"number":22,"protocol":"UDP","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"3h","requireApproval":{"approvers":"ops","count":1}}]}]}}`)
	f.Add(`{}`)
	f.Add(`{"properties": {`)
	e := &fuzzEnv{}
	f.Fuzz(func(t *testing.T, body string) { e.check(t, "PUT", polURL, body) })
}

// FuzzRequestBody fuzzes drawbridge's short request body.
func FuzzRequestBody(f *testing.F) {
	for _, s := range []string{
		`{"vm":"` + web01 + `","ports":[22],"duration":"1h","source":"198.18.0.9","justification":"x"}`,
		`{"vm":"` + web01 + `","ports":[22,3389],"duration":"PT30M","source":"198.18.0.9"}`,
		`{"vm":"` + web01 + `","ports":[22],"endTimeUtc":"2099-01-01T00:00:00Z"}`,
		`{"vm":"` + web01 + `","ports":[22],"duration":"1ns"}`,
		`{"vm":"web-01","ports":[22],"duration":"1h"}`, `{"vm":"","ports":[]}`, `{}`, `{"vm":1}`,
	} {
		f.Add(s)
	}
	e := &fuzzEnv{}
	f.Fuzz(func(t *testing.T, body string) { e.check(t, "POST", "/drawbridge/v1/requests", body) })
}
