package assess

import (
	"strings"
	"time"
)

// AccessRecord is one JIT access request from the history, as much of it as
// the views need.
type AccessRecord struct {
	VMID     string    `json:"vmId"`
	User     string    `json:"user"`
	Time     time.Time `json:"time"`
	Approved bool      `json:"approved"`
}

// ViewWindow is how far back the Configured view counts approved requests.
const ViewWindow = 7 * 24 * time.Hour

// Views are the portal's three tabs of the JIT page.
type Views struct {
	// Configured: VMs with a JIT policy that JIT can protect.
	Configured []ConfiguredVM `json:"configured"`
	// NotConfigured: VMs JIT can protect that have no policy.
	NotConfigured []NotConfiguredVM `json:"notConfigured"`
	// Unsupported: VMs JIT cannot protect, with the reason.
	Unsupported []UnsupportedVM `json:"unsupported"`
}

// ConfiguredVM is a row of the Configured tab.
type ConfiguredVM struct {
	ID       string       `json:"id"`
	Name     string       `json:"name,omitempty"`
	JITPorts []PolicyPort `json:"jitPorts"`
	// ApprovedRequests counts approved requests in the ViewWindow up to now.
	ApprovedRequests int `json:"approvedRequestsLast7Days"`
	// LastAccess and LastUser are the latest approved request at or before
	// now (zero and empty if there is none).
	LastAccess time.Time `json:"lastAccess,omitzero"`
	LastUser   string    `json:"lastUser,omitempty"`
	// StillReachable repeats the result's warning: guarded ports the
	// internet reaches all the same.
	StillReachable []Exposure `json:"stillReachable,omitempty"`
}

// NotConfiguredVM is a row of the Not configured tab.
type NotConfiguredVM struct {
	ID        string     `json:"id"`
	Name      string     `json:"name,omitempty"`
	Status    Status     `json:"status"`
	Exposures []Exposure `json:"exposures,omitempty"`
}

// UnsupportedVM is a row of the Unsupported tab.
type UnsupportedVM struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Reason Reason `json:"reason"`
	Detail string `json:"detail"`
}

// BuildViews sorts a report's VMs into the three tabs, in report order, and
// fills the Configured tab's request figures from history as of now.
// Requests after now (clock skew, a future-dated import) are not counted.
func BuildViews(r Report, history []AccessRecord, now time.Time) Views {
	type stats struct {
		count int
		last  time.Time
		user  string
	}
	byVM := map[string]*stats{}
	since := now.Add(-ViewWindow)
	for _, h := range history {
		if !h.Approved || h.Time.After(now) {
			continue
		}
		k := strings.ToLower(h.VMID)
		s := byVM[k]
		if s == nil {
			s = &stats{}
			byVM[k] = s
		}
		if !h.Time.Before(since) {
			s.count++
		}
		if s.user == "" || h.Time.After(s.last) {
			s.last, s.user = h.Time, h.User
		}
	}
	v := Views{Configured: []ConfiguredVM{}, NotConfigured: []NotConfiguredVM{}, Unsupported: []UnsupportedVM{}}
	for _, res := range r.Results {
		switch {
		case res.Status == NotApplicable:
			v.Unsupported = append(v.Unsupported, UnsupportedVM{ID: res.ID, Name: res.Name, Reason: res.Reason, Detail: res.Detail})
		case res.HasPolicy():
			c := ConfiguredVM{ID: res.ID, Name: res.Name, JITPorts: res.JITPorts, StillReachable: res.StillReachable}
			if s := byVM[strings.ToLower(res.ID)]; s != nil {
				c.ApprovedRequests, c.LastAccess, c.LastUser = s.count, s.last, s.user
			}
			v.Configured = append(v.Configured, c)
		default:
			v.NotConfigured = append(v.NotConfigured, NotConfiguredVM{ID: res.ID, Name: res.Name, Status: res.Status, Exposures: res.Exposures})
		}
	}
	return v
}
