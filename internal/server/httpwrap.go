package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/metrics"
)

// HeaderRequestID carries a request's correlation ID: taken from the
// caller when it is a plausible ID, else generated; always answered.
const HeaderRequestID = "X-Request-Id"

type requestIDKey struct{}

// RequestIDFrom returns the request ID the HTTP layer put in ctx ("" outside a request).
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// validRequestID accepts up to 128 characters of [A-Za-z0-9._:-], so a
// caller's ID can go into logs and headers as it is.
func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// recorder notes the status and size of a response and keeps the start of
// an error body (the Azure error envelope) for the refusal log line.
type recorder struct {
	http.ResponseWriter
	status  int
	bytes   int64
	errBody []byte
}

const errBodyKeep = 2048

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.status >= 400 && len(r.errBody) < errBodyKeep {
		r.errBody = append(r.errBody, b[:min(len(b), errBodyKeep-len(r.errBody))]...)
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and deadlines (agent streams).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// errorOf extracts code and message from an Azure error envelope.
func errorOf(body []byte) (code, msg string) {
	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(bytes.TrimSpace(body), &env) == nil {
		return env.Error.Code, env.Error.Message
	}
	return "", ""
}

// observed wraps the whole HTTP surface: request ID, metrics by route
// pattern, an access log line at debug and an info line for each refused
// or accepted change that the event stream does not already log.
func observed(next http.Handler, route func(*http.Request) string, m *metrics.Metrics, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		id := r.Header.Get(HeaderRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set(HeaderRequestID, id)
		pattern := route(r)
		ctx := context.WithValue(r.Context(), requestIDKey{}, id)
		rec := &recorder{ResponseWriter: w}
		method, path := r.Method, r.URL.Path
		next.ServeHTTP(rec, r.WithContext(ctx))
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		took := time.Since(began)
		m.ObserveHTTP(method, pattern, rec.status, took)
		log.DebugContext(ctx, "http request", "method", method, "path", path, "route", pattern, "status", rec.status,
			"bytes", rec.bytes, "duration_ms", float64(took.Microseconds())/1000, "remote", r.RemoteAddr)
		logChange(ctx, log, m, method, pattern, path, rec)
	})
}

// isInitiate reports whether a route pattern asks for access.
func isInitiate(pattern string) bool {
	return strings.HasSuffix(pattern, "/initiate") || pattern == "POST /drawbridge/v1/requests"
}

// logChange writes the info line of a change made or refused through the
// API. Grants opened and closed, requests accepted and approvals come from
// the event stream (eventLog) once their transaction commits.
func logChange(ctx context.Context, log *slog.Logger, m *metrics.Metrics, method, pattern, path string, rec *recorder) {
	if method == http.MethodGet || method == http.MethodHead || pattern == "" || strings.HasPrefix(pattern, "POST /drawbridge/v1/agent/") {
		return
	}
	if rec.status >= 400 {
		code, msg := errorOf(rec.errBody)
		what := "change refused"
		if isInitiate(pattern) {
			what = "request refused"
			m.RequestRefused(rec.status)
		}
		log.InfoContext(ctx, what, "method", method, "route", pattern, "path", path, "status", rec.status, "reason", metrics.RefusalReason(rec.status), "code", code, "message", msg)
		return
	}
	switch {
	case method == http.MethodPut && strings.HasSuffix(pattern, "/jitNetworkAccessPolicies/{name}"):
		log.InfoContext(ctx, "policy put", "policy", path, "status", rec.status)
	case method == http.MethodDelete && strings.HasSuffix(pattern, "/jitNetworkAccessPolicies/{name}"):
		log.InfoContext(ctx, "policy deleted", "policy", path, "status", rec.status)
	case !isInitiate(pattern):
		log.InfoContext(ctx, "change made", "method", method, "route", pattern, "path", path, "status", rec.status)
	}
}

// contextHandler adds the request ID of the context to every record.
type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestIDFrom(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(as)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}

// WithRequestIDs returns a logger whose records made with a request's
// context carry its request_id.
func WithRequestIDs(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(contextHandler); ok {
		return l
	}
	return slog.New(contextHandler{l.Handler()})
}
