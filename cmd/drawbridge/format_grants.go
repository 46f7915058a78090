package main

import (
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/jit"
)

// printGrantsAt is the grants table as people read it at time now: who
// asked, from where, how long is left, and for ended grants when (a clock
// time in now's location: local, or UTC with --utc) and why they ended.
// wide (-o wide) adds full VM IDs, end times and applied.
func printGrantsAt(w io.Writer, gs []api.GrantView, now time.Time, wide bool) {
	head := []string{"GRANT", "VM", "PORT", "SOURCE", "REQUESTER", "STATE", "WHEN"}
	if wide {
		head = append(head, "END", "APPLIED", "VM ID")
	}
	t := newTable(w, head...)
	for _, g := range gs {
		state, when := grantState(g.Grant, now), grantWhen(g, gs, now)
		row := []string{g.ID, lastSegment(g.VMID), strconv.Itoa(g.Port), g.Source.String(), g.Requestor, state, when}
		if wide {
			row = append(row, fmtTimeIn(g.EndTime, now.Location()), strconv.FormatBool(g.Applied), g.VMID)
		}
		t.row(row...)
	}
	t.flush()
	printGrantsConnect(w, gs, now)
}

// grantState is open, opening (the firewall is not changed yet), pending
// (waiting for approval) or ended.
func grantState(g jit.Grant, now time.Time) string {
	switch {
	case g.Status == jit.StatusPending:
		return "pending"
	case g.IsActive(now) && g.Applied:
		return "open"
	case g.IsActive(now):
		if g.ProviderError != "" {
			return "opening (" + g.ProviderError + ")"
		}
		return "opening"
	}
	return "ended"
}

// grantWhen is the time left of an open grant, or when and why an ended one
// ended; a grant replaced by a newer request names who made it.
func grantWhen(g api.GrantView, all []api.GrantView, now time.Time) string {
	if g.IsActive(now) || g.Status == jit.StatusPending {
		return relDuration(g.EndTime.Sub(now)) + " left"
	}
	ended := g.EndedAt
	if ended.IsZero() {
		ended = g.EndTime
	}
	why := map[jit.Reason]string{
		jit.ReasonExpired: "expired", jit.ReasonUserRequested: "revoked", jit.ReasonPolicyRemoved: "policy removed",
		jit.ReasonDenied: "denied", jit.ReasonApprovalLapsed: "lapsed", jit.ReasonNewerRequestInitiated: "replaced",
	}[g.StatusReason]
	if why == "" {
		why = string(g.StatusReason)
	}
	if g.StatusReason == jit.ReasonNewerRequestInitiated {
		if by := replacedBy(g, all); by != "" {
			why += " by " + by
		}
	}
	return clockTime(ended, now) + ", " + why
}

// clockTime is t as a clock time in now's location, with the date when it
// is not now's day; UTC is marked Z.
func clockTime(t, now time.Time) string {
	t = t.In(now.Location())
	layout := "15:04"
	if y, m, d := t.Date(); y != now.Year() || m != now.Month() || d != now.Day() {
		layout = "Jan 02 15:04"
	}
	if now.Location() == time.UTC {
		layout += "Z"
	}
	return t.Format(layout)
}

// fmtTimeIn is RFC 3339 in loc (with its offset; Z for UTC).
func fmtTimeIn(t time.Time, loc *time.Location) string {
	if t.IsZero() {
		return ""
	}
	return t.In(loc).Format(time.RFC3339)
}

// replacedBy finds who made the request that ended g: the grant on the
// same VM and port that started when g ended.
func replacedBy(g api.GrantView, all []api.GrantView) string {
	for _, o := range all {
		if o.ID != g.ID && o.Port == g.Port && strings.EqualFold(o.VMID, g.VMID) && absDur(o.StartTime.Sub(g.EndedAt)) < 2*time.Second {
			return o.Requestor
		}
	}
	return ""
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
