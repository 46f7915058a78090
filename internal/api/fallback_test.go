package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// Unknown routes, wrong methods and paths with "." or ".." segments answer
// Azure's error envelope (they were Go's plain-text 404/405 and a bodyless
// redirect to another path), and change nothing.
func TestRouteFallbacksAnswerTheEnvelope(t *testing.T) {
	e := newEnv(t)
	if code, body := e.do("PUT", polURL, azurePolicyBody(web01, 22)); code != 200 {
		t.Fatalf("PUT = %d %v", code, body)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cases := []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{"GET", "/nope", 404, "NotFound", ""},
		{"GET", "/drawbridge/v1/nope", 404, "NotFound", ""},
		{"GET", "/", 404, "NotFound", ""},
		{"DELETE", "/drawbridge/v1/vms", 405, "MethodNotAllowed", "GET, HEAD"},
		{"PATCH", polURL, 405, "MethodNotAllowed", "DELETE, GET, HEAD, PUT"},
		{"GET", strings.Replace(polURL, "/default", "/x/../default", 1), 400, "InvalidPath", ""},
		{"DELETE", strings.Replace(polURL, "/default", "/x/%2e%2e/default", 1), 400, "InvalidPath", ""},
		{"GET", "/drawbridge/v1/./vms", 400, "InvalidPath", ""},
		{"GET", "/drawbridge//v1/vms", 400, "InvalidPath", ""},
	}
	for _, c := range cases {
		before := e.snapshot()
		req, _ := http.NewRequest(c.method, e.srv.URL+c.path, nil)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(body), `"code": "`+c.code+`"`) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s = %d %s %q; want %d with code %s in the envelope", c.method, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, c.status, c.code)
		}
		if c.allow != "" && resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, resp.Header.Get("Allow"), c.allow)
		}
		if e.snapshot() != before {
			t.Errorf("%s %s changed state", c.method, c.path)
		}
	}
}
