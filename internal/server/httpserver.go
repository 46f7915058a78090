package server

import (
	"net/http"
	"strings"
	"time"
)

// Default HTTP timeouts. Reads are bounded as a whole (headers and a body of
// at most 4 MiB); writes per request, longer for the routes that stream.
const (
	DefaultReadTimeout  = time.Minute
	DefaultWriteTimeout = 2 * time.Minute
	DefaultIdleTimeout  = 2 * time.Minute
	// DefaultStreamWriteTimeout bounds a streamed audit read or export,
	// which may carry millions of records to a slow reader.
	DefaultStreamWriteTimeout = time.Hour
)

// newHTTPServer builds the http.Server with cfg's timeouts (defaults where
// zero). Go's server clears the read deadline once a request's body has been
// read, so ReadTimeout never cuts a long response; WriteTimeout is the
// deadline of every response, raised per route by streamWrites.
func newHTTPServer(cfg Config, h http.Handler) *http.Server {
	or := func(d, def time.Duration) time.Duration {
		if d == 0 {
			return def
		}
		return d
	}
	stream := or(cfg.StreamWriteTimeout, DefaultStreamWriteTimeout)
	return &http.Server{
		Handler:           streamWrites(h, stream),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       or(cfg.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      or(cfg.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:       or(cfg.IdleTimeout, DefaultIdleTimeout),
	}
}

// streamWrites gives the routes that stream (audit reads and exports) a
// write deadline of d instead of the server's WriteTimeout. The agent stream
// sets its own deadline before each line it sends.
func streamWrites(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && (r.URL.Path == "/drawbridge/v1/audit" || strings.HasPrefix(r.URL.Path, "/drawbridge/v1/audit/")) {
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
		}
		h.ServeHTTP(w, r)
	})
}
