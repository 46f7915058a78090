// Package apitest checks HTTP traffic against the OpenAPI document
// (internal/api's openapi.json) in tests: a Validator wraps a handler and
// validates every request it receives and every response it sends, with
// kin-openapi's JSON Schema 2020-12 validator. Tests only: it is not linked
// into the drawbridge binary.
//
// A request the document calls invalid must be refused (4xx): a test may
// send bad input on purpose, but the server may not accept what the
// document forbids. Every response must match the document, errors
// included.
package apitest

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// Validator validates traffic; see the package documentation.
type Validator struct {
	doc   *openapi3.T
	route func(*http.Request) string
	canon func(string) string

	mu      sync.Mutex
	errs    []string
	checked int
}

// New loads doc. route returns the ServeMux pattern serving a request
// ("METHOD /path/{param}", "" for none), canon the path as the server
// routes it (nil: unchanged).
func New(doc []byte, route func(*http.Request) string, canon func(string) string) (*Validator, error) {
	loader := openapi3.NewLoader()
	d, err := loader.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	if err := d.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi: the document is invalid: %w", err)
	}
	if canon == nil {
		canon = func(s string) string { return s }
	}
	return &Validator{doc: d, route: route, canon: canon}, nil
}

// Errors returns what failed validation so far; Checked how many exchanges
// were validated.
func (v *Validator) Errors() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.errs...)
}

func (v *Validator) Checked() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.checked
}

func (v *Validator) fail(format string, args ...any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs = append(v.errs, fmt.Sprintf(format, args...))
}

// tee passes a response through and keeps a copy of its body.
type tee struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (t *tee) WriteHeader(code int) {
	if t.status == 0 {
		t.status = code
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *tee) Write(b []byte) (int, error) {
	if t.status == 0 {
		t.status = http.StatusOK
	}
	if t.body.Len() < 8<<20 {
		t.body.Write(b)
	}
	return t.ResponseWriter.Write(b)
}

func (t *tee) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// Wrap returns next, validated.
func (v *Validator) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pattern := v.route(r)
		method, tmpl, _ := strings.Cut(pattern, " ")
		item := v.doc.Paths.Value(tmpl)
		var operation *openapi3.Operation
		if item != nil {
			operation = item.GetOperation(method)
		}
		if pattern == "" || operation == nil {
			if pattern != "" {
				v.fail("%s %s: route %q is not in the OpenAPI document", r.Method, r.URL.Path, pattern)
			}
			next.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		vr := r.Clone(r.Context())
		vr.Body = io.NopCloser(bytes.NewReader(body))
		vr.URL.Path = v.canon(r.URL.Path)
		if len(body) > 0 && vr.Header.Get("Content-Type") == "" {
			vr.Header.Set("Content-Type", "application/json") // what the server assumes
		}
		in := &openapi3filter.RequestValidationInput{
			Request:    vr,
			PathParams: pathParams(tmpl, vr.URL.Path),
			Route:      &routers.Route{Spec: v.doc, Path: tmpl, PathItem: item, Method: method, Operation: operation},
			Options:    &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, RejectWhenRequestBodyNotSpecified: true},
		}
		reqErr := openapi3filter.ValidateRequest(r.Context(), in)

		rec := &tee{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		where := fmt.Sprintf("%s %s (%s) → %d", r.Method, r.URL.RequestURI(), pattern, rec.status)
		if reqErr != nil && rec.status < 400 {
			v.fail("%s: accepted a request the document forbids: %v", where, reqErr)
		}
		ct := rec.Header().Get("Content-Type")
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in,
			Status:                 rec.status,
			Header:                 rec.Header(),
			Body:                   io.NopCloser(bytes.NewReader(rec.body.Bytes())),
			Options:                &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: strings.HasPrefix(ct, "application/x-ndjson") || strings.HasPrefix(ct, "text/plain")},
		}
		if err := openapi3filter.ValidateResponse(r.Context(), out); err != nil {
			v.fail("%s: response does not match the document: %v\nbody: %.600s", where, err, rec.body.String())
		}
		v.mu.Lock()
		v.checked++
		v.mu.Unlock()
	})
}

// pathParams matches a template's {name} segments against a path.
func pathParams(tmpl, path string) map[string]string {
	out := map[string]string{}
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	for i := 0; i < len(ts) && i < len(ps); i++ {
		if strings.HasPrefix(ts[i], "{") && strings.HasSuffix(ts[i], "}") {
			out[ts[i][1:len(ts[i])-1]] = ps[i]
		}
	}
	return out
}

// Main runs a package's tests with every server they start checked
// against the OpenAPI document doc: install is server.SetTestTrafficWrapper
// (passed in, so this package does not import the server), canon
// api.CanonicalPath. Any mismatch fails the run, listed on stderr. Use it
// as func TestMain(m *testing.M) { os.Exit(apitest.Main(m, ...)) }. A run
// with -test.bench is not validated: benchmarks measure the server.
func Main(m *testing.M, doc []byte, canon func(string) string, install func(func(http.Handler, func(*http.Request) string) http.Handler)) int {
	var (
		mu sync.Mutex
		vs []*Validator
	)
	flag.Parse()
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		// Benchmarks measure the server, not the validator.
		fmt.Fprintln(os.Stderr, "apitest: -test.bench given: traffic is not validated against the OpenAPI document in this run")
		return m.Run()
	}
	install(func(h http.Handler, route func(*http.Request) string) http.Handler {
		v, err := New(doc, route, canon)
		if err != nil {
			panic(err)
		}
		mu.Lock()
		vs = append(vs, v)
		mu.Unlock()
		return v.Wrap(h)
	})
	code := m.Run()
	install(nil)
	mu.Lock()
	defer mu.Unlock()
	var errs []string
	checked := 0
	for _, v := range vs {
		errs = append(errs, v.Errors()...)
		checked += v.Checked()
	}
	for _, e := range errs {
		fmt.Fprintln(os.Stderr, "OpenAPI:", e)
	}
	if len(errs) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: %d exchanges do not match the OpenAPI document (internal/api/openapi.json)\n", len(errs))
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "OpenAPI: %d exchanges matched the document\n", checked)
	}
	return code
}
