// Package api owns drawbridge's HTTP interface: Azure-compatible
// jitNetworkAccessPolicies endpoints plus drawbridge's own under
// /drawbridge/v1. Handlers only decode, authenticate, authorize, call the JIT
// service and encode; business rules live in internal/jit.
package api

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/drawbridge/drawbridge/internal/access"
	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/auth"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/sim"
	"github.com/drawbridge/drawbridge/internal/rbac"
	"github.com/drawbridge/drawbridge/internal/resource"
	"github.com/drawbridge/drawbridge/internal/store"
)

// Authenticator finds who is calling. It returns an error for a request
// that presents bad credentials.
type Authenticator interface {
	Authenticate(r *http.Request) (rbac.Principal, error)
}

// Authorizer decides whether a principal may perform an operation on a
// target (a VM, policy or scope). Every handler calls it once per target.
type Authorizer interface {
	AuthorizeOperation(p rbac.Principal, op rbac.Operation, target resource.ID) error
}

// NetworkViewer renders a VM's firewall as its provider sees it.
type NetworkViewer interface {
	View(ctx context.Context, vmID string) (sim.View, error)
	NSG(ctx context.Context, id string) (netrule.NSG, error)
}

// LocalPrincipal authenticates every caller as one fixed principal. It is
// the default of a server started without authentication (the demo).
type LocalPrincipal struct{ Name string }

func (l LocalPrincipal) Authenticate(*http.Request) (rbac.Principal, error) {
	return rbac.Principal{Name: l.Name}, nil
}

// AllowAll authorizes everything (a server without RBAC configured).
type AllowAll struct{}

func (AllowAll) AuthorizeOperation(rbac.Principal, rbac.Operation, resource.ID) error { return nil }

// Config wires a Server.
type Config struct {
	Service       *jit.Service
	Network       NetworkViewer
	Authenticator Authenticator
	Authorizer    Authorizer
	Logger        *slog.Logger
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// MaxBodyBytes bounds request bodies (default 4 MiB).
	MaxBodyBytes int64
	// AzurePageSize is how many policies a page of Azure's list calls
	// holds (default DefaultAzurePageSize); more follow through nextLink.
	AzurePageSize int
	// Agents, if set, serves the host agents' stream and report endpoints.
	Agents Agents
	// Auditor, if set, records refused requests (401, 403, 400, ...).
	Auditor Auditor
	// FailureLimiter, if set, limits failed authentications per source
	// address (429 with Retry-After once a source is out of attempts).
	FailureLimiter *auth.FailureLimiter
	// RefusalLimiter, if set, limits refused calls (403, 404, …) per
	// principal and per source address: 429 with Retry-After past the
	// limit, and one audit record per window for what was turned away.
	RefusalLimiter *auth.RefusalLimiter
	// AuditPublicKey, if set, is the key of the audit log's signed
	// checkpoints: GET /drawbridge/v1/audit/verify checks them too.
	AuditPublicKey ed25519.PublicKey
	// Access, if set, serves the token, role, assignment and audit endpoints.
	Access *access.Store
}

// Server is the HTTP API.
type Server struct {
	cfg       Config
	mux       *http.ServeMux
	lastFlush lastFlushTime // see refused
}

// New builds the API server.
func New(cfg Config) *Server {
	if cfg.Authenticator == nil {
		cfg.Authenticator = LocalPrincipal{Name: "local"}
	}
	if cfg.Authorizer == nil {
		cfg.Authorizer = AllowAll{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.routes()
	return s
}

const policyBase = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies"

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("PUT "+policyBase+"/{name}", s.putPolicy)
	m.HandleFunc("GET "+policyBase+"/{name}", s.getPolicy)
	m.HandleFunc("DELETE "+policyBase+"/{name}", s.deletePolicy)
	m.HandleFunc("POST "+policyBase+"/{name}/initiate", s.initiate)
	m.HandleFunc("GET "+policyBase, s.listPolicies)
	m.HandleFunc("GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Security/jitNetworkAccessPolicies", s.listPolicies)
	m.HandleFunc("GET /subscriptions/{sub}/providers/Microsoft.Security/locations/{loc}/jitNetworkAccessPolicies", s.listPolicies)
	m.HandleFunc("GET /subscriptions/{sub}/providers/Microsoft.Security/jitNetworkAccessPolicies", s.listPolicies)

	m.HandleFunc("GET /drawbridge/v1/policies", s.listAllPolicies)
	m.HandleFunc("GET /drawbridge/v1/vms", s.listVMs)
	m.HandleFunc("GET /drawbridge/v1/network", s.networkView)
	m.HandleFunc("GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkSecurityGroups/{name}", s.getNSG)
	m.HandleFunc("GET /drawbridge/v1/aws/security-groups", s.describeSecurityGroups)
	m.HandleFunc("GET /drawbridge/v1/grants", s.listGrants)
	m.HandleFunc("POST /drawbridge/v1/grants/{id}/revoke", s.revokeGrant)
	m.HandleFunc("POST /drawbridge/v1/requests", s.simpleRequest)
	m.HandleFunc("POST /drawbridge/v1/inventory", s.applyInventory)
	m.HandleFunc("GET /drawbridge/v1/assessment", s.getAssessment)
	m.HandleFunc("POST /drawbridge/v1/assessment/fix", s.fixAssessment)
	s.agentRoutes()
	s.accessRoutes()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// Handler returns the API as an http.Handler. Azure paths are
// case-insensitive in their fixed segments, so those are normalised first.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.URL.Path = canonicalPath(r.URL.Path)
		r.URL.RawPath = ""
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		s.serve(w, r)
	})
}

var fixedSegments = map[string]string{}

func init() {
	for _, seg := range []string{"subscriptions", "resourceGroups", "providers", "Microsoft.Security", "Microsoft.Network", "networkSecurityGroups", "locations", "jitNetworkAccessPolicies", "initiate"} {
		fixedSegments[strings.ToLower(seg)] = seg
	}
}

// canonicalPath rewrites Azure's fixed path segments to one spelling
// (resourcegroups → resourceGroups). A segment that follows a word naming a
// resource (subscriptions/{sub}, locations/{loc}, …) is a name and is kept.
func canonicalPath(p string) string {
	if !strings.HasPrefix(strings.ToLower(p), "/subscriptions/") {
		return p
	}
	segs := strings.Split(p, "/")
	for i := 1; i < len(segs); i++ {
		if prev := strings.ToLower(segs[i-1]); i > 1 && namedBy[prev] {
			continue
		}
		if c, ok := fixedSegments[strings.ToLower(segs[i])]; ok {
			segs[i] = c
		}
	}
	return strings.Join(segs, "/")
}

// namedBy lists the fixed words whose next segment is a name.
var namedBy = map[string]bool{"subscriptions": true, "resourcegroups": true, "locations": true, "jitnetworkaccesspolicies": true, "networksecuritygroups": true}

// caller authenticates the request and returns the actor for the service.
func (s *Server) caller(w http.ResponseWriter, r *http.Request) (rbac.Principal, jit.Actor, bool) {
	if info := requestInfo(r); info != nil {
		return info.identity.Principal, info.actor, true // authenticated by serve
	}
	p, err := s.cfg.Authenticator.Authenticate(r)
	if err != nil {
		writeError(w, http.StatusUnauthorized, "AuthenticationFailed", "", err.Error())
		return rbac.Principal{}, jit.Actor{}, false
	}
	return p, jit.Actor{Principal: p.Name, Address: s.clientAddr(r).String()}, true
}

func (s *Server) authorize(w http.ResponseWriter, p rbac.Principal, op rbac.Operation, target string) bool {
	noteRefusal(w, string(op), target, "")
	id, err := resource.Parse(target)
	if err != nil {
		writeError(w, http.StatusBadRequest, "InvalidResourceId", "", err.Error())
		return false
	}
	if handled, err := agentCheck(w, op, id); handled {
		if err != nil {
			writeError(w, http.StatusForbidden, "AuthorizationFailed", "", err.Error())
			return false
		}
		return true
	}
	if err := s.cfg.Authorizer.AuthorizeOperation(p, op, id); err != nil {
		if errors.Is(err, rbac.ErrDenied) {
			writeError(w, http.StatusForbidden, "AuthorizationFailed", "", err.Error())
		} else {
			s.cfg.Logger.Error("authorization failed", "op", op, "target", target, "err", err)
			writeError(w, http.StatusInternalServerError, "InternalError", "", "authorization: "+err.Error())
		}
		return false
	}
	return true
}

// decode reads a JSON body strictly: unknown fields and trailing data are errors.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequestContent", jsonErrorField(err), "request body: "+describeJSONError(err))
		return false
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "InvalidRequestContent", "", "request body: unexpected data after the JSON document")
		return false
	}
	return true
}

func jsonErrorField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	// encoding/json names an unknown field only in its message.
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return strings.Trim(f, `"`)
	}
	return ""
}

func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %s: expected %s, got JSON %s", te.Field, te.Type, te.Value)
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Sprintf("larger than %d bytes", mbe.Limit)
	}
	if errors.Is(err, io.EOF) {
		return "empty body"
	}
	return err.Error()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, target, msg string) {
	// Messages quote the caller's input; a bounded prefix is enough.
	msg, target = audit.Bound(msg, maxErrorMessage), audit.Clean(target)
	noteRefusal(w, "", "", msg)
	writeJSON(w, status, ErrorResponse{Error: ErrorBody{Code: code, Message: msg, Target: target}})
}

// writeServiceError maps the service's error kinds to status codes.
func (s *Server) writeServiceError(w http.ResponseWriter, r *http.Request, err error) {
	var fe *jit.FieldError
	field := ""
	if errors.As(err, &fe) {
		field = fe.Field
	}
	switch {
	case errors.Is(err, jit.ErrInvalid):
		writeError(w, http.StatusBadRequest, "BadRequest", field, err.Error())
	case errors.Is(err, jit.ErrForbidden):
		writeError(w, http.StatusForbidden, "Forbidden", field, err.Error())
	case errors.Is(err, jit.ErrNotFound):
		writeError(w, http.StatusNotFound, "NotFound", field, err.Error())
	case errors.Is(err, jit.ErrConflict):
		writeError(w, http.StatusConflict, "Conflict", field, err.Error())
	case errors.Is(err, store.ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "DatabaseUnavailable", "", err.Error())
	case errors.Is(err, context.Canceled):
		writeError(w, 499, "ClientClosedRequest", "", "the client closed the request")
	default:
		s.cfg.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "InternalError", "", err.Error())
	}
}
