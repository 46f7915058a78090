package server_test

import (
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
)

// TestRawBytesInRequestsKeepTheChain sends requests whose paths and
// queries carry bytes that are not UTF-8, and a huge VM ID, with and
// without a token: each refusal is audited, and the log still verifies
// (a raw byte hashed as itself but read back as U+FFFD broke it for good).
func TestRawBytesInRequestsKeepTheChain(t *testing.T) {
	e := startAuthServer(t)
	nobody := e.tokenFor("mallory", "Reader", "/subscriptions/none")
	huge := "/drawbridge/v1/grants?vm=" + strings.Repeat("A", 1<<20) + "%ff"
	for _, c := range []struct{ token, method, path string }{
		{"", "POST", "/drawbridge/v1/grants/%ff/revoke"},
		{"", "GET", "/subscriptions/%ff/providers/Microsoft.Security/jitNetworkAccessPolicies"},
		{"", "GET", "/drawbridge/v1/network?vm=%ff"},
		{nobody, "POST", "/drawbridge/v1/grants/%ff%fe/revoke"},
		{nobody, "GET", "/drawbridge/v1/network?vm=%ff"},
		{nobody, "GET", "/drawbridge/v1/grants?vm=%ff"},
		{nobody, "GET", huge},
		{nobody, "GET", "/drawbridge/v1/audit?principal=%c3%28"},
	} {
		if st, _, _ := e.call(c.token, c.method, c.path, nil); st < 400 {
			t.Fatalf("%s %.60s: status %d, want a refusal", c.method, c.path, st)
		}
	}
	// Raw bytes in a body: a policy, then requests whose justification
	// and VM are not UTF-8 (accepted or refused, each audited).
	e.must(e.admin, "PUT", webPol, policyBody(webVM), 200)
	accepted := 0
	for _, body := range []string{
		"{\"vm\":\"" + webVM + "\",\"ports\":[22],\"duration\":\"PT1H\",\"source\":\"198.18.9.9\",\"justification\":\"ok\xff\xfe\"}",
		"{\"vm\":\"web-01\xff\",\"ports\":[22],\"duration\":\"PT1H\"}",
		"{\"vm\":\"" + webVM + "\",\"ports\":[22],\"duration\":\"PT1H\",\"source\":\"198.18.9.9\",\"justification\":\"\xc3\x28 \xed\xa0\x80\"}",
	} {
		if st, _, _ := e.call(e.admin, "POST", "/drawbridge/v1/requests", body); st == 202 {
			accepted++
		}
		e.call(nobody, "POST", "/drawbridge/v1/requests", body)
	}
	if accepted != 2 {
		t.Errorf("%d requests with raw bytes in the justification accepted, want 2", accepted)
	}
	var rep auditstore.Report
	if err := jsonUnmarshal(e.must(e.admin, "GET", "/drawbridge/v1/audit/verify", nil, 200), &rep); err != nil || !rep.OK {
		t.Fatalf("verify after hostile requests: %+v %v", rep, err)
	}
	var list struct {
		Value []struct{ Target, Detail, Principal string }
	}
	if err := jsonUnmarshal(e.must(e.admin, "GET", "/drawbridge/v1/audit", nil, 200), &list); err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, r := range list.Value {
		if r.Principal == "mallory" || r.Principal == "(unauthenticated)" {
			refused++
		}
		if len(r.Target) > 512 || len(r.Detail) > 512 {
			t.Errorf("record target %d bytes, detail %d bytes; want at most 512", len(r.Target), len(r.Detail))
		}
	}
	if refused < 6 {
		t.Errorf("%d refusals audited, want at least 6", refused)
	}
}
