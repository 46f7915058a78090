package armsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/drawbridge/drawbridge/internal/netrule"
)

// operation is a long-running operation: it answers InProgress to
// AsyncPolls polls, then Succeeded, and marks its resource Succeeded.
type operation struct {
	sub, loc string
	polls    int
	done     bool
	finish   func() // marks the target's provisioningState Succeeded
	delete   bool
}

// startOp registers an operation and sets the polling headers on w:
// Azure-AsyncOperation always, Location too for a delete. Caller holds mu.
func (s *Server) startOp(w http.ResponseWriter, r *http.Request, rt route, loc string, isDelete bool, finish func()) {
	id := s.uuid()
	s.ops[id] = &operation{sub: rt.sub, loc: loc, finish: finish, delete: isDelete}
	q := url.Values{"api-version": {r.URL.Query().Get("api-version")}}.Encode()
	base := fmt.Sprintf("%s/subscriptions/%s/providers/Microsoft.Network/locations/%s/", s.url, rt.sub, loc)
	w.Header().Set("Azure-AsyncOperation", base+"operations/"+id+"?"+q)
	if isDelete {
		w.Header().Set("Location", base+"operationResults/"+id+"?"+q)
	}
	setRetryAfter(w.Header(), s.opts.PollAfter)
}

func (s *Server) pollOp(w http.ResponseWriter, r *http.Request, rt route) {
	op := s.ops[rt.op]
	if op == nil || !strings.EqualFold(op.sub, rt.sub) {
		writeErr(w, http.StatusNotFound, "OperationNotFound", "Operation "+rt.op+" not found.", "")
		return
	}
	if !op.done {
		op.polls++
		if op.polls > s.opts.AsyncPolls {
			op.done = true
			if op.finish != nil {
				op.finish()
			}
		}
	}
	if rt.opKind == "operationresults" {
		if !op.done {
			w.Header().Set("Location", s.url+r.URL.String())
			setRetryAfter(w.Header(), s.opts.PollAfter)
			w.WriteHeader(http.StatusAccepted)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	status := "InProgress"
	if op.done {
		status = "Succeeded"
	} else {
		setRetryAfter(w.Header(), s.opts.PollAfter)
	}
	writeJSON(w, http.StatusOK, doc{"name": rt.op, "status": status})
}

// ifMatch applies If-Match / If-None-Match against the current etag ("" if
// the resource does not exist); false means 412 was written.
func ifMatch(w http.ResponseWriter, r *http.Request, etag, id string) bool {
	if m := r.Header.Get("If-Match"); m != "" && !(m == "*" && etag != "") && m != etag {
		writeErr(w, http.StatusPreconditionFailed, "PreconditionFailed",
			fmt.Sprintf("The condition specified using HTTP conditional header(s) is not met: If-Match %s, current etag %q.", m, etag), id)
		return false
	}
	if m := r.Header.Get("If-None-Match"); m == "*" && etag != "" {
		writeErr(w, http.StatusPreconditionFailed, "PreconditionFailed", "The resource already exists (If-None-Match: *).", id)
		return false
	}
	return true
}

func readBody(w http.ResponseWriter, r *http.Request) (doc, bool) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	var d doc
	if err == nil {
		err = json.Unmarshal(b, &d)
	}
	if err != nil || d == nil {
		writeErr(w, http.StatusBadRequest, "InvalidRequestFormat", "Cannot parse the request body as a JSON object.", "")
		return nil, false
	}
	return d, true
}

// putRule creates or updates one security rule of an NSG, checking what
// Azure checks: priority range, known direction/access/protocol, a name of
// at most 80 characters, and no other rule of the same direction at the
// same priority.
func (s *Server) putRule(w http.ResponseWriter, r *http.Request, rt route) {
	nsg := s.res[key(rt.parent)]
	if nsg == nil {
		writeErr(w, http.StatusNotFound, "ResourceNotFound", "The Resource '"+rt.parent+"' was not found.", rt.parent)
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	name := lastSeg(rt.id)
	i, old := findRule(nsg, name)
	etag := ""
	if old != nil {
		etag, _ = old["etag"].(string)
	}
	if !ifMatch(w, r, etag, rt.id) {
		return
	}
	rule, err := ruleFromDoc(name, body)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "InvalidRequestFormat", "properties: "+err.Error(), "properties")
		return
	}
	if target, msg := checkRule(rule); msg != "" {
		writeErr(w, http.StatusBadRequest, "SecurityRuleParameterInvalid", msg, target)
		return
	}
	rules, _ := props(nsg)["securityRules"].([]any)
	for _, o := range rules {
		od := o.(doc)
		on := od["name"].(string)
		or, _ := ruleFromDoc(on, od)
		if !strings.EqualFold(on, name) && or.Priority == rule.Priority && or.Direction == rule.Direction {
			writeErr(w, http.StatusBadRequest, "SecurityRuleConflict",
				fmt.Sprintf("Security rule %s conflicts with rule %s. Rules cannot have the same Priority and Direction.", name, on), "properties.priority")
			return
		}
	}
	rd := ruleDoc(nsg["id"].(string), rule)
	props(rd)["provisioningState"] = "Updating"
	rd["etag"] = s.etag()
	status := http.StatusCreated
	if old != nil {
		rules[i] = rd
		status = http.StatusOK
	} else {
		rules = append(rules, rd)
	}
	props(nsg)["securityRules"] = rules
	nsg["etag"] = s.etag()
	s.startOp(w, r, rt, nsg["location"].(string), false, func() { props(rd)["provisioningState"] = "Succeeded" })
	writeJSON(w, status, rd)
}

func checkRule(r netrule.SecurityRule) (target, msg string) {
	switch {
	case len(r.Name) > 80:
		return "name", "Security rule name is longer than 80 characters."
	case r.Priority < netrule.MinPriority || r.Priority > netrule.MaxPriority:
		return "properties.priority", fmt.Sprintf("Security rule has invalid Priority %d. Value provided: %d Allowed range 100-4096.", r.Priority, r.Priority)
	case r.Direction != netrule.Inbound && r.Direction != netrule.Outbound:
		return "properties.direction", fmt.Sprintf("Security rule has invalid direction %q.", r.Direction)
	case r.Access != netrule.Allow && r.Access != netrule.Deny:
		return "properties.access", fmt.Sprintf("Security rule has invalid access %q.", r.Access)
	case len(r.DestinationPorts()) == 0:
		return "properties.destinationPortRange", "Security rule has no destination port range."
	case len(r.Sources()) == 0 || len(r.Destinations()) == 0:
		return "properties.sourceAddressPrefix", "Security rule must have source and destination address prefixes."
	}
	if _, err := netrule.ParseProtocol(string(r.Protocol)); err != nil {
		return "properties.protocol", "Security rule has invalid Protocol: " + err.Error()
	}
	if _, err := netrule.ParsePortRanges(r.DestinationPorts()); err != nil {
		return "properties.destinationPortRange", "Security rule has invalid Port range: " + err.Error()
	}
	return "", ""
}

func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request, rt route) {
	nsg := s.res[key(rt.parent)]
	if nsg == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	i, old := findRule(nsg, lastSeg(rt.id))
	if old == nil {
		w.WriteHeader(http.StatusNoContent) // ARM: deleting what is gone succeeds
		return
	}
	if e, _ := old["etag"].(string); !ifMatch(w, r, e, rt.id) {
		return
	}
	rules := props(nsg)["securityRules"].([]any)
	props(nsg)["securityRules"] = slices.Delete(rules, i, i+1)
	nsg["etag"] = s.etag()
	s.startOp(w, r, rt, nsg["location"].(string), true, nil)
	w.WriteHeader(http.StatusAccepted)
}
