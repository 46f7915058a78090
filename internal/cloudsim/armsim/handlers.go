package armsim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// writeErr answers with ARM's error envelope.
func writeErr(w http.ResponseWriter, status int, code, msg, target string) {
	e := doc{"code": code, "message": msg}
	if target != "" {
		e["target"] = target
	}
	writeJSON(w, status, doc{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// route is a parsed request path.
type route struct {
	sub   string
	scope string // "/subscriptions/{sub}[/resourceGroups/{rg}]"
	typ   string // full type, e.g. Microsoft.Network/networkSecurityGroups[/securityRules]
	id    string // resource ID (empty for lists)
	// parent is the NSG or virtual network of a child list or child resource.
	parent string
	op     string // operation ID for operation polls
	opKind string // "operations" or "operationResults"
}

func parseRoute(p string) (route, bool) {
	segs := strings.Split(strings.Trim(p, "/"), "/")
	if len(segs) < 5 || !strings.EqualFold(segs[0], "subscriptions") {
		return route{}, false
	}
	rt := route{sub: segs[1], scope: "/subscriptions/" + segs[1]}
	rest := segs[2:]
	if strings.EqualFold(rest[0], "resourceGroups") {
		if len(rest) < 5 {
			return route{}, false
		}
		rt.scope += "/resourceGroups/" + rest[1]
		rest = rest[2:]
	} else if len(rest) == 6 && strings.EqualFold(rest[2], "locations") {
		// providers/Microsoft.Network/locations/{loc}/operations/{id}
		rt.opKind, rt.op = strings.ToLower(rest[4]), rest[5]
		return rt, true
	}
	if !strings.EqualFold(rest[0], "providers") {
		return route{}, false
	}
	ns, rest := rest[1], rest[2:]
	switch len(rest) {
	case 1: // list
		rt.typ = ns + "/" + rest[0]
	case 2: // resource
		rt.typ, rt.id = ns+"/"+rest[0], rt.scope+"/providers/"+ns+"/"+rest[0]+"/"+rest[1]
	case 3: // child list
		rt.typ, rt.parent = ns+"/"+rest[0]+"/"+rest[2], rt.scope+"/providers/"+ns+"/"+rest[0]+"/"+rest[1]
	case 4: // child resource
		rt.typ, rt.parent = ns+"/"+rest[0]+"/"+rest[2], rt.scope+"/providers/"+ns+"/"+rest[0]+"/"+rest[1]
		rt.id = rt.parent + "/" + rest[2] + "/" + rest[3]
	default:
		return route{}, false
	}
	if (rt.id != "" || rt.parent != "") && !strings.Contains(rt.scope, "/resourceGroups/") {
		return route{}, false // resources live in resource groups
	}
	return rt, true
}

// action is the Azure RBAC action a request needs.
func action(method string, rt route) string {
	if rt.op != "" {
		return ""
	}
	verb := "read"
	switch method {
	case http.MethodPut, http.MethodPatch:
		verb = "write"
	case http.MethodDelete:
		verb = "delete"
	}
	return rt.typ + "/" + verb
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-ms-request-id", s.uuid())
	rt, ok := parseRoute(r.URL.Path)
	status := 0
	defer func() {
		if ok {
			s.mu.Lock()
			s.calls = append(s.calls, Call{Method: r.Method, Path: r.URL.Path, Action: action(r.Method, rt), Status: status})
			s.mu.Unlock()
		}
	}()
	fail := func(st int, code, msg, target string) {
		status = st
		writeErr(w, st, code, msg, target)
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") || len(r.Header.Get("Authorization")) < 8 {
		fail(http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.", "")
		return
	}
	if r.URL.Query().Get("api-version") == "" {
		fail(http.StatusBadRequest, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.", "api-version")
		return
	}
	if !ok {
		fail(http.StatusNotFound, "InvalidResourceType", "The resource path "+r.URL.Path+" is not served by this simulator.", "")
		return
	}
	write := r.Method == http.MethodPut || r.Method == http.MethodDelete || r.Method == http.MethodPatch
	kind, wait, slow := s.faults.pick(write)
	if n := s.faults.remainingWrites(); write && n >= 0 {
		w.Header().Set("x-ms-ratelimit-remaining-subscription-writes", strconv.Itoa(n))
	}
	if slow > 0 {
		select {
		case <-time.After(slow):
		case <-r.Context().Done():
			return
		}
	}
	switch kind {
	case throttle:
		setRetryAfter(w.Header(), wait)
		fail(http.StatusTooManyRequests, "TooManyRequests", "The request is being throttled.", "")
		return
	case serverError:
		fail(http.StatusInternalServerError, "InternalServerError", "An error has occurred in the simulated service.", "")
		return
	case drop:
		status = -1
		hangUp(w)
		return
	}
	if fn := s.firewallWriteHook(r, rt); fn != nil {
		fn(r.Context(), rt.id)
	}
	rw := &statusWriter{ResponseWriter: w}
	s.dispatch(rw, r, rt)
	status = rw.status
	if kind == dropAfter {
		status = -1
		hangUp(w)
		return
	}
	rw.flush()
}

// statusWriter buffers an answer so that a "dropped after the write"
// fault can discard it after the change is applied.
type statusWriter struct {
	http.ResponseWriter
	status int
	body   []byte
}

func (w *statusWriter) WriteHeader(s int) { w.status = s }
func (w *statusWriter) Write(b []byte) (int, error) {
	w.body = append(w.body, b...)
	return len(b), nil
}
func (w *statusWriter) flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.ResponseWriter.WriteHeader(w.status)
	_, _ = w.ResponseWriter.Write(w.body)
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, rt route) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case rt.op != "":
		s.pollOp(w, r, rt)
	case r.Method == http.MethodGet && rt.id == "":
		s.list(w, r, rt)
	case r.Method == http.MethodGet:
		d := s.get(rt)
		if d == nil {
			writeErr(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Resource %s not found.", rt.id), rt.id)
			return
		}
		writeJSON(w, http.StatusOK, d)
	case strings.EqualFold(rt.typ, TypeRule) && r.Method == http.MethodPut:
		s.putRule(w, r, rt)
	case strings.EqualFold(rt.typ, TypeRule) && r.Method == http.MethodDelete:
		s.deleteRule(w, r, rt)
	case strings.EqualFold(rt.typ, TypeFirewall) && r.Method == http.MethodPut:
		s.putFirewall(w, r, rt)
	default:
		writeErr(w, http.StatusMethodNotAllowed, "UnsupportedOperation", r.Method+" "+rt.typ+" is not simulated.", "")
	}
}

// get returns the resource for a GET (a virtual network with its subnets,
// a security rule out of its NSG). Caller holds mu.
func (s *Server) get(rt route) doc {
	if strings.EqualFold(rt.typ, TypeRule) {
		nsg := s.res[key(rt.parent)]
		if nsg == nil {
			return nil
		}
		_, rd := findRule(nsg, lastSeg(rt.id))
		return rd
	}
	d := s.res[key(rt.id)]
	if d == nil || !strings.EqualFold(d["type"].(string), rt.typ) {
		return nil
	}
	if strings.EqualFold(rt.typ, TypeVNet) {
		d = toDoc(d)
		props(d)["subnets"] = s.children(TypeSubnet, rt.id)
	}
	return d
}

func findRule(nsg doc, name string) (int, doc) {
	rules, _ := props(nsg)["securityRules"].([]any)
	for i, r := range rules {
		if rd := r.(doc); strings.EqualFold(rd["name"].(string), name) {
			return i, rd
		}
	}
	return -1, nil
}

// children lists the resources of typ under parent, in key order.
func (s *Server) children(typ, parent string) []any {
	pre := key(parent) + "/"
	out := []any{}
	for _, k := range s.keysOf(typ) {
		if strings.HasPrefix(k, pre) {
			out = append(out, s.res[k])
		}
	}
	return out
}

// keysOf returns the sorted keys of the resources of typ, cached until a
// resource is added (every list page would otherwise scan and sort them
// all). Caller holds mu.
func (s *Server) keysOf(typ string) []string {
	t := strings.ToLower(typ)
	if ks, ok := s.byType[t]; ok {
		return ks
	}
	ks := []string{}
	for k, d := range s.res {
		if strings.EqualFold(d["type"].(string), typ) {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	s.byType[t] = ks
	return ks
}

// list answers a list of a type in a scope (or of a parent's children), one
// page at a time with nextLink.
func (s *Server) list(w http.ResponseWriter, r *http.Request, rt route) {
	var items []any
	switch {
	case strings.EqualFold(rt.typ, TypeRule):
		nsg := s.res[key(rt.parent)]
		if nsg == nil {
			writeErr(w, http.StatusNotFound, "NotFound", "Resource "+rt.parent+" not found.", rt.parent)
			return
		}
		items, _ = props(nsg)["securityRules"].([]any)
	case rt.parent != "":
		items = s.children(rt.typ, rt.parent)
	default:
		for _, d := range s.children(rt.typ, rt.scope) {
			if strings.EqualFold(rt.typ, TypeVNet) {
				id := d.(doc)["id"].(string)
				d = s.get(route{typ: TypeVNet, id: id})
			}
			items = append(items, d)
		}
	}
	skip, _ := strconv.Atoi(r.URL.Query().Get("$skipToken"))
	end := min(len(items), skip+s.opts.PageSize)
	page := doc{"value": append([]any{}, items[min(skip, end):end]...)}
	if end < len(items) {
		q := url.Values{"api-version": {r.URL.Query().Get("api-version")}, "$skipToken": {strconv.Itoa(end)}}
		page["nextLink"] = s.url + r.URL.Path + "?" + q.Encode()
	}
	writeJSON(w, http.StatusOK, page)
}
