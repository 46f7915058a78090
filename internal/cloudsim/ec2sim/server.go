package ec2sim

import (
	"encoding/xml"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// APIVersion is the EC2 API version the simulator speaks.
const APIVersion = "2016-11-15"

const xmlns = "http://ec2.amazonaws.com/doc/" + APIVersion + "/"

// Options configures a Server.
type Options struct {
	AccessKey string // required in every request's SigV4 credential scope
	// SecretKey, if set, makes the simulator verify each request's SigV4
	// signature in full (SignatureDoesNotMatch otherwise); without it only
	// the Authorization header's shape and access key are checked.
	SecretKey string
	Region    string // "" accepts any region
	AccountID string // owner of every resource; default 123456789012
	// RulesPerGroup is the quota of inbound rules per group, counted
	// separately for IPv4 and IPv6 sources as EC2 does; 0 means no limit.
	RulesPerGroup int
}

// Faults are injected into requests. The zero value injects none.
type Faults struct {
	// ThrottleRate is the probability that a request fails with
	// RequestLimitExceeded (HTTP 503) before it changes anything.
	ThrottleRate float64
	// RatePerSecond and Burst, if RatePerSecond > 0, throttle like EC2's
	// token bucket: a request finding the bucket empty gets
	// RequestLimitExceeded.
	RatePerSecond float64
	Burst         int
	// ErrorRate is the probability of an HTTP 500 InternalError; half of
	// those happen after the change was made, as a lost response would.
	ErrorRate float64
	// ConsistencyDelay hides a created security group from every other
	// request (InvalidGroup.NotFound) for this long, like EC2's eventual
	// consistency right after CreateSecurityGroup.
	ConsistencyDelay time.Duration
	// Seed makes the random faults repeatable.
	Seed uint64
}

// Server is the simulator. It is safe for concurrent use.
type Server struct {
	opts Options

	mu        sync.Mutex
	faults    Faults
	rnd       *rand.Rand
	tokens    float64
	lastFill  time.Time
	groups    map[string]*Group
	enis      map[string]*ENI
	instances map[string]*Instance
	seq       int
	calls     map[string]int
	reqs      int
	throttled int
	hook      func(action string)
}

// New returns an empty simulated account.
func New(opts Options) *Server {
	if opts.AccountID == "" {
		opts.AccountID = "123456789012"
	}
	return &Server{opts: opts, groups: map[string]*Group{}, enis: map[string]*ENI{}, instances: map[string]*Instance{},
		calls: map[string]int{}, rnd: rand.New(rand.NewPCG(0, 0))}
}

// SetFaults replaces the injected faults.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	s.rnd = rand.New(rand.NewPCG(f.Seed, f.Seed^0x9e3779b97f4a7c15))
	s.tokens, s.lastFill = float64(f.Burst), time.Now()
}

// OnRequest sets a function called (without the lock) with each accepted
// request's action before it runs, for tests that act mid-change.
func (s *Server) OnRequest(fn func(action string)) {
	s.mu.Lock()
	s.hook = fn
	s.mu.Unlock()
}

// Calls returns how often each action was called (including failed
// attempts), for a least-privilege policy.
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// Throttled returns how many requests got RequestLimitExceeded.
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// Requests returns the number of requests received.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs
}

// apiError is an EC2 error: HTTP status, code and message.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errf(status int, code, format string, a ...any) *apiError {
	return &apiError{status, code, fmt.Sprintf(format, a...)}
}

func badParam(format string, a ...any) *apiError {
	return errf(400, "InvalidParameterValue", format, a...)
}

type handler func(s *Server, q params) (any, *apiError)

var actions = map[string]handler{
	"DescribeInstances":               (*Server).describeInstances,
	"DescribeNetworkInterfaces":       (*Server).describeNetworkInterfaces,
	"DescribeSecurityGroups":          (*Server).describeSecurityGroups,
	"CreateSecurityGroup":             (*Server).createSecurityGroup,
	"DeleteSecurityGroup":             (*Server).deleteSecurityGroup,
	"AuthorizeSecurityGroupIngress":   (*Server).authorizeIngress,
	"RevokeSecurityGroupIngress":      (*Server).revokeIngress,
	"ModifyNetworkInterfaceAttribute": (*Server).modifyNetworkInterface,
	"CreateTags":                      (*Server).createTags,
}

// mutating actions can fail after their change (a lost response).
var mutating = map[string]bool{
	"CreateSecurityGroup": true, "DeleteSecurityGroup": true, "AuthorizeSecurityGroupIngress": true,
	"RevokeSecurityGroupIngress": true, "ModifyNetworkInterfaceAttribute": true, "CreateTags": true,
}

// credRE is the shape of a SigV4 Authorization header. Compiled on first
// use: the simulator is linked into every drawbridge process, and the CLI
// should not compile it at start.
var credRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([a-z0-9-]+)/([a-z0-9]+)/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$`)
})

func (s *Server) checkAuth(r *http.Request, body []byte) *apiError {
	m := credRE().FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return errf(401, "AuthFailure", "AWS was not able to validate the provided access credentials")
	}
	if m[1] != s.opts.AccessKey {
		return errf(401, "AuthFailure", "AWS was not able to validate the provided access credentials")
	}
	if s.opts.Region != "" && m[3] != s.opts.Region {
		return errf(401, "AuthFailure", "Credential should be scoped to a valid region, not '%s'.", m[3])
	}
	if m[4] != "ec2" {
		return errf(401, "AuthFailure", "Credential should be scoped to correct service: 'ec2'.")
	}
	if !strings.Contains(";"+m[5]+";", ";host;") || !strings.Contains(";"+m[5]+";", ";x-amz-date;") {
		return errf(401, "AuthFailure", "host and x-amz-date must be signed")
	}
	d := r.Header.Get("X-Amz-Date")
	if len(d) != 16 || d[:8] != m[2] {
		return errf(401, "AuthFailure", "X-Amz-Date %q does not match the credential scope date %s", d, m[2])
	}
	if s.opts.SecretKey != "" {
		return verifySignature(r, body, m[5], m[3], d, s.opts.AccessKey, s.opts.SecretKey)
	}
	return nil
}

// ServeHTTP answers one EC2 Query API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := s.requestID()
	if r.Method != http.MethodPost {
		writeError(w, reqID, errf(400, "InvalidAction", "EC2 Query requests must be POSTed here"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		writeError(w, reqID, errf(400, "MalformedQueryString", "%v", err))
		return
	}
	if e := s.checkAuth(r, body); e != nil {
		writeError(w, reqID, e)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		writeError(w, reqID, errf(400, "MalformedQueryString", "%v", err))
		return
	}
	action := form.Get("Action")
	h, ok := actions[action]
	if !ok {
		writeError(w, reqID, errf(400, "InvalidAction", "The action %s is not valid for this web service.", action))
		return
	}
	if v := form.Get("Version"); v != APIVersion {
		writeError(w, reqID, errf(400, "InvalidParameterValue", "Version %q is not %s", v, APIVersion))
		return
	}
	s.mu.Lock()
	s.calls[action]++
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		hook(action)
	}

	s.mu.Lock()
	fault := s.drawFault(mutating[action])
	if fault == faultThrottle {
		s.throttled++
		s.mu.Unlock()
		writeError(w, reqID, errf(503, "RequestLimitExceeded", "Request limit exceeded."))
		return
	}
	if fault == faultErrorBefore {
		s.mu.Unlock()
		writeError(w, reqID, errf(500, "InternalError", "An internal error has occurred"))
		return
	}
	out, apiErr := h(s, params(form))
	s.mu.Unlock()
	if apiErr != nil {
		writeError(w, reqID, apiErr)
		return
	}
	if fault == faultErrorAfter {
		writeError(w, reqID, errf(500, "InternalError", "An internal error has occurred"))
		return
	}
	writeXML(w, action, reqID, out)
}

type faultKind int

const (
	faultNone faultKind = iota
	faultThrottle
	faultErrorBefore
	faultErrorAfter
)

// drawFault decides a request's fault; s.mu is held.
func (s *Server) drawFault(mut bool) faultKind {
	s.reqs++
	f := s.faults
	if f.RatePerSecond > 0 {
		now := time.Now()
		s.tokens = min(float64(max(f.Burst, 1)), s.tokens+now.Sub(s.lastFill).Seconds()*f.RatePerSecond)
		s.lastFill = now
		if s.tokens < 1 {
			return faultThrottle
		}
		s.tokens--
	}
	if f.ThrottleRate > 0 && s.rnd.Float64() < f.ThrottleRate {
		return faultThrottle
	}
	if f.ErrorRate > 0 && s.rnd.Float64() < f.ErrorRate {
		if mut && s.rnd.IntN(2) == 0 {
			return faultErrorAfter
		}
		return faultErrorBefore
	}
	return faultNone
}

func (s *Server) requestID() string {
	s.mu.Lock()
	s.seq++
	n := s.seq
	s.mu.Unlock()
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
}

// newID returns an EC2-style ID with 17 hex digits; s.mu is held.
func (s *Server) newID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s-%017x", prefix, uint64(s.seq)*0x9e3779b1%(1<<60))
}

type errorResponse struct {
	XMLName   xml.Name `xml:"Response"`
	Errors    []xmlErr `xml:"Errors>Error"`
	RequestID string   `xml:"RequestID"`
}

type xmlErr struct {
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func writeError(w http.ResponseWriter, reqID string, e *apiError) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.status)
	b, _ := xml.Marshal(errorResponse{Errors: []xmlErr{{e.code, e.message}}, RequestID: reqID})
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

func writeXML(w http.ResponseWriter, action, reqID string, out any) {
	if m, ok := out.(interface{ setRequestID(string) }); ok {
		m.setRequestID(reqID)
	}
	b, err := xml.Marshal(out)
	if err != nil {
		writeError(w, reqID, errf(500, "InternalError", "encode: %v", err))
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}
