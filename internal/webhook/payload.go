package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
)

// Payload is the JSON body of one delivery.
type Payload struct {
	ID         string    `json:"id"`    // = the X-Drawbridge-Delivery header
	Event      string    `json:"event"` // requested, approved, denied, opened, closed
	Time       time.Time `json:"time"`
	Principal  string    `json:"principal"`           // who caused it ("drawbridge" for expiry and lapse)
	Requester  string    `json:"requester,omitempty"` // whose request, when known
	VM         string    `json:"vm"`                  // resource ID
	Port       int       `json:"port"`
	Protocol   string    `json:"protocol"`
	Source     string    `json:"source"`
	EndTimeUtc time.Time `json:"endTimeUtc"`
	GrantID    string    `json:"grantId"`
	RequestID  string    `json:"requestId"`
	Reason     string    `json:"reason"`           // closed/denied: why; requested: AwaitingApproval or ""
	Detail     string    `json:"detail,omitempty"` // justification (requested) or denial reason (denied)
	Text       string    `json:"text"`             // one-line summary (Slack incoming-webhook field)
}

// PayloadOf converts an event (without its delivery ID).
func PayloadOf(e jit.Event) Payload {
	return Payload{
		Event: string(e.Kind), Time: e.Time.UTC(), Principal: e.Principal, Requester: e.Requestor,
		VM: e.VMID, Port: e.Port, Protocol: e.Protocol, Source: e.Source, EndTimeUtc: e.EndTime.UTC(),
		GrantID: e.GrantID, RequestID: e.RequestID, Reason: string(e.Reason), Detail: e.Detail,
		Text: Text(e),
	}
}

// Text is the one-line summary of an event, escaped for Slack (&, <, >).
func Text(e jit.Event) string {
	vm := e.VMID
	if i := strings.LastIndex(vm, "/"); i >= 0 && i < len(vm)-1 {
		vm = vm[i+1:]
	}
	target := fmt.Sprintf("%s port %d", vm, e.Port)
	if e.Protocol != "" && e.Protocol != "*" {
		target += "/" + strings.ToUpper(e.Protocol)
	}
	until := e.EndTime.UTC().Format(time.RFC3339)
	whose := e.Requestor
	if whose == "" {
		whose = "the requester"
	}
	var s string
	switch e.Kind {
	case jit.EventRequested:
		s = fmt.Sprintf("%s requested %s from %s until %s", e.Principal, target, e.Source, until)
		if e.Reason == jit.ReasonAwaitingApproval {
			s += " (awaiting approval)"
		}
		if e.Detail != "" {
			s += ": " + e.Detail
		}
	case jit.EventApproved:
		s = fmt.Sprintf("%s approved %s's request for %s from %s until %s", e.Principal, whose, target, e.Source, until)
	case jit.EventDenied:
		if e.Reason == jit.ReasonApprovalLapsed {
			s = fmt.Sprintf("%s's request for %s from %s lapsed without a decision", whose, target, e.Source)
		} else {
			s = fmt.Sprintf("%s denied %s's request for %s from %s", e.Principal, whose, target, e.Source)
			if e.Detail != "" {
				s += ": " + e.Detail
			}
		}
	case jit.EventOpened:
		s = fmt.Sprintf("opened %s to %s for %s until %s", target, e.Source, whose, until)
	case jit.EventClosed:
		s = fmt.Sprintf("closed %s to %s (%s", target, e.Source, e.Reason)
		if e.Reason != jit.ReasonExpired && e.Principal != "" && e.Principal != jit.SystemPrincipal {
			s += " by " + e.Principal
		}
		s += ")"
	case jit.EventDrift:
		s = fmt.Sprintf("drift on %s, repaired: %s", vm, e.Detail) // by its agent or the reconcile
	case "audit.checkpoint": // internal/server: a signed head of the audit log
		s = "audit log checkpoint: " + e.Detail
	default:
		s = fmt.Sprintf("%s: %s by %s", e.Kind, target, e.Principal)
	}
	s = strings.Join(strings.Fields(s), " ") // one line
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Sign returns the X-Drawbridge-Signature value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header is body's signature under secret
// (constant-time), for receivers written in Go.
func Verify(secret, body []byte, header string) bool {
	return hmac.Equal([]byte(header), []byte(Sign(secret, body)))
}
