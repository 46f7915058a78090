package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/jit"
)

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{&client.Error{StatusCode: 400}, exitUsage},
		{&client.Error{StatusCode: 401}, exitAuth},
		{&client.Error{StatusCode: 403}, exitPermission},
		{&client.Error{StatusCode: 404}, exitNotFound},
		{&client.Error{StatusCode: 409}, exitConflict},
		{&client.Error{StatusCode: 429}, exitUnavailable},
		{&client.Error{StatusCode: 503}, exitUnavailable},
		{&client.Error{StatusCode: 500}, exitFailure},
		{fmt.Errorf("%w at http://x: connection refused", client.ErrUnreachable), exitUnavailable},
		{errors.New("--port: at least one port is required"), exitUsage},
		{errors.New("something else"), exitFailure},
		{exitError{code: exitRefused, err: errors.New("denied")}, exitRefused},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestProgressLineCountsDown(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	st := requestStatus{ID: "r1", State: stateAwaiting, Approval: &jit.PendingRequest{ApprovalRecord: jit.ApprovalRecord{
		Rules: []jit.ApprovalRule{{Approvers: "ops", Count: 1}}, LapseAt: now.Add(4*time.Minute + 5*time.Second)}}}
	a, b := progressLine(st, now), progressLine(st, now.Add(time.Minute))
	if !strings.Contains(a, "1 of ops") || !strings.Contains(a, "4m05s") || !strings.Contains(b, "3m05s") {
		t.Fatalf("progress lines %q, %q", a, b)
	}
	for d, want := range map[time.Duration]string{-time.Second: "0s", 59 * time.Second: "59s", 61 * time.Minute: "1h01m", 50 * time.Hour: "2d2h"} {
		if got := relDuration(d); got != want {
			t.Errorf("relDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// An ended grant says when and why; one replaced by a newer request names
// who made it.
func TestGrantsTableNamesWhoReplacedAGrant(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	vm := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-01"
	ended := now.Add(-3 * time.Minute)
	old := api.GrantView{Requestor: "carol", Grant: jit.Grant{ID: "g1", VMID: vm, Port: 22, Status: jit.StatusRevoked,
		StatusReason: jit.ReasonNewerRequestInitiated, StartTime: now.Add(-time.Hour), EndTime: now.Add(time.Hour), EndedAt: ended}}
	newer := api.GrantView{Requestor: "erin", Grant: jit.Grant{ID: "g2", VMID: vm, Port: 22, Status: jit.StatusInitiated, Applied: true,
		StartTime: ended, EndTime: now.Add(57 * time.Minute)}}
	var b strings.Builder
	printGrantsAt(&b, []api.GrantView{newer, old}, now, false)
	out := b.String()
	for _, want := range []string{"11:57Z, replaced by erin", "57m00s left", "open", "ended"} {
		if !strings.Contains(out, want) {
			t.Errorf("grants table lacks %q:\n%s", want, out)
		}
	}
}
