package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/jit"
)

// Request states as `request status` and `request --wait` report them.
const (
	stateAwaiting = "AwaitingApproval" // needs approvals still
	stateDenied   = "Denied"
	stateLapsed   = "Lapsed" // nobody decided in time
	stateOpening  = "Opening"
	stateOpen     = "Open" // every grant in force and applied
	stateEnded    = "Ended"
)

// requestStatus is one request as its requester follows it: the approval
// record (if it needed approval) and its grants, which keep their IDs
// across approval.
type requestStatus struct {
	ID       string              `json:"id"`
	State    string              `json:"state"`
	Approval *jit.PendingRequest `json:"approval,omitempty"`
	Grants   []api.GrantView     `json:"grants"`
}

// done reports whether waiting is over.
func (s requestStatus) done() bool { return s.State != stateAwaiting && s.State != stateOpening }

// fetchRequestStatus reads request id: its approval record, and its grants
// among vmID's (all the caller may see when vmID is empty).
func fetchRequestStatus(ctx context.Context, c *client.Client, id, vmID string) (requestStatus, error) {
	st := requestStatus{ID: id, Grants: []api.GrantView{}}
	p, err := c.PendingRequest(ctx, id)
	switch {
	case err == nil:
		st.Approval = &p
		if vmID == "" && len(p.Request.Grants) > 0 {
			vmID = p.Request.Grants[0].VMID
		}
	case client.StatusCode(err) != http.StatusNotFound:
		return st, err
	}
	if st.Approval != nil && st.Approval.State != jit.ApprovalApproved {
		st.State = map[string]string{jit.ApprovalPending: stateAwaiting, jit.ApprovalDenied: stateDenied, jit.ApprovalLapsed: stateLapsed}[st.Approval.State]
		return st, nil
	}
	gs, err := c.GrantViews(ctx, vmID, false)
	if err != nil {
		return st, err
	}
	for _, g := range gs {
		if g.RequestID == id && g.Status != jit.StatusPending {
			st.Grants = append(st.Grants, g)
		}
	}
	if len(st.Grants) == 0 {
		if st.Approval != nil { // approved, grants not visible yet
			st.State = stateOpening
			return st, nil
		}
		return st, &client.Error{StatusCode: http.StatusNotFound, Code: "NotFound", Message: "request " + id + " not found among the grants you may see"}
	}
	sortGrantViews(st.Grants)
	st.State = stateEnded
	for _, g := range st.Grants {
		if g.Status == jit.StatusInitiated && !g.Applied {
			st.State = stateOpening
			break
		}
		if g.Status == jit.StatusInitiated {
			st.State = stateOpen
		}
	}
	return st, nil
}

// waitPoll is how often --wait asks the server (a var for tests).
var waitPoll = 500 * time.Millisecond

// waitRequest polls request id until it is open, denied, lapsed or ended.
// On a terminal (and not -o json) it keeps one progress line on stderr.
func (a *app) waitRequest(ctx context.Context, c *client.Client, id, vmID string) (requestStatus, error) {
	tty := !a.json() && isTerminal(a.stderr)
	for {
		st, err := fetchRequestStatus(ctx, c, id, vmID)
		if err != nil || st.done() {
			if tty {
				fmt.Fprint(a.stderr, "\r\033[K")
			}
			return st, err
		}
		if tty {
			fmt.Fprintf(a.stderr, "\r\033[K%s", progressLine(st, time.Now()))
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(waitPoll):
		}
	}
}

// progressLine is --wait's one line: what the request waits for and the
// countdown to when it lapses.
func progressLine(st requestStatus, now time.Time) string {
	if st.Approval != nil && st.State == stateAwaiting {
		var needs []string
		for _, r := range st.Approval.Rules {
			needs = append(needs, fmt.Sprintf("%d of %s", r.Count, r.Approvers))
		}
		return fmt.Sprintf("request %s: waiting for approval (%s), lapses in %s", safeText(st.ID), safeText(strings.Join(needs, ", ")), relDuration(st.Approval.LapseAt.Sub(now)))
	}
	return fmt.Sprintf("request %s: %s", safeText(st.ID), st.State)
}

// relDuration renders a duration for people: 59m12s, 2h05m, 3d4h.
func relDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// printRequestStatus is the table form of a request's status.
func printRequestStatus(w io.Writer, st requestStatus, now time.Time, wide bool) {
	fmt.Fprintf(w, "request %s: %s\n", safeText(st.ID), st.State)
	if p := st.Approval; p != nil {
		for _, ap := range p.Approvals {
			line := "approved by " + ap.Principal + " at " + fmtTimeIn(ap.Time, now.Location())
			if ap.Reason != "" {
				line += ": " + ap.Reason
			}
			fmt.Fprintln(w, safeText(line))
		}
		if p.State == jit.ApprovalDenied || p.State == jit.ApprovalLapsed {
			line := strings.ToLower(p.State) + " at " + fmtTimeIn(p.DecidedAt, now.Location())
			if p.DecidedBy != "" {
				line += " by " + p.DecidedBy
			}
			if p.Reason != "" {
				line += ": " + p.Reason
			}
			fmt.Fprintln(w, safeText(line))
		}
	}
	if len(st.Grants) > 0 {
		printGrantsAt(w, st.Grants, now, wide)
	}
}

// exitForState maps a finished --wait to its exit code: 0 once open (or
// ended after opening), exitRefused when denied or lapsed.
func exitForState(st requestStatus) error {
	if st.State == stateDenied || st.State == stateLapsed {
		return exitError{code: exitRefused, err: fmt.Errorf("request %s %s", st.ID, strings.ToLower(st.State))}
	}
	return nil
}

func (a *app) requestStatusCmd() *cobra.Command {
	var wait bool
	cmd := &cobra.Command{
		Use:   "status REQUEST-ID [--wait]",
		Short: "Show a request: waiting for approval, denied, lapsed, open or ended, with its grants",
		Args:  exactArgs(1, "a request ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if wait {
				return a.printWaited(cmd.Context(), c, args[0], "")
			}
			st, err := fetchRequestStatus(cmd.Context(), c, args[0], "")
			if err != nil {
				return err
			}
			return a.printStatus(st)
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "block until the request is open, denied or lapsed")
	return cmd
}

func (a *app) printStatus(st requestStatus) error {
	if a.json() {
		return a.printData(st)
	}
	printRequestStatus(a.stdout, st, a.now(), a.wide())
	return nil
}

// printWaited waits for request id (on vmID, if known), prints where it
// ended up and returns the error that sets the exit code.
func (a *app) printWaited(ctx context.Context, c *client.Client, id, vmID string) error {
	st, err := a.waitRequest(ctx, c, id, vmID)
	if err != nil {
		return err
	}
	if err := a.printStatus(st); err != nil {
		return err
	}
	return exitForState(st)
}
