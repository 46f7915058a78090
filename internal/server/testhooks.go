package server

import "net/http"

// testWrapStore, when set (by tests only), wraps the store Start opens, so
// a test can take the database away and bring it back.
var testWrapStore func(backend) backend

// testWrapHandler, when set (by tests only), wraps the HTTP handler inside
// the request-ID and metrics layer; route names a request's route pattern.
var testWrapHandler func(h http.Handler, route func(*http.Request) string) http.Handler

// SetTestTrafficWrapper is for tests (of any package): every server
// started afterwards serves through wrap, which gets the handler and the
// function naming a request's route pattern. apitest.Main uses it to check
// all traffic against the OpenAPI document. nil removes it.
func SetTestTrafficWrapper(wrap func(h http.Handler, route func(*http.Request) string) http.Handler) {
	testWrapHandler = wrap
}
