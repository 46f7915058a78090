package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// approvalCmds are `request approve ID`, `request deny ID` and `request
// pending`, added under the request command.
func (a *app) approvalCmds() []*cobra.Command {
	var approveReason string
	approve := &cobra.Command{
		Use:   "approve REQUEST-ID [--reason TEXT]",
		Short: "Approve a pending request (the last approval needed opens it)",
		Args:  exactArgs(1, "a request ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.Approve(cmd.Context(), args[0], approveReason)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printData(out)
			}
			if out.Opened != nil {
				fmt.Fprintf(a.stdout, "request %s approved and opened\n", args[0])
				return nil
			}
			fmt.Fprintf(a.stdout, "request %s: approval %d recorded; still pending\n", args[0], len(out.Pending.Approvals))
			return nil
		},
	}
	approve.Flags().StringVar(&approveReason, "reason", "", "why (recorded with the approval and in the audit log)")
	var reason string
	deny := &cobra.Command{
		Use:   "deny REQUEST-ID [--reason TEXT]",
		Short: "Deny a pending request",
		Args:  exactArgs(1, "a request ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.Deny(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printData(out)
			}
			fmt.Fprintf(a.stdout, "request %s denied\n", args[0])
			return nil
		},
	}
	deny.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	pending := &cobra.Command{
		Use:   "pending",
		Short: "List requests waiting for approval",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ps, err := c.PendingRequests(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return a.printData(ps)
			}
			t := newTable(a.stdout, "REQUEST", "REQUESTOR", "VM", "PORTS", "APPROVALS", "NEEDS", "LAPSES", "JUSTIFICATION")
			for _, p := range ps {
				var vms, ports, needs []string
				for _, g := range p.Request.Grants {
					vms = append(vms, lastSegment(g.VMID))
					ports = append(ports, fmt.Sprint(g.Port))
				}
				for _, r := range p.Rules {
					needs = append(needs, fmt.Sprintf("%d of %s", r.Count, r.Approvers))
				}
				t.row(p.Request.ID, p.Request.Requestor, strings.Join(vms, ","), strings.Join(ports, ","), fmt.Sprint(len(p.Approvals)), strings.Join(needs, ", "), fmtTimeIn(p.LapseAt, a.now().Location()), p.Request.Justification)
			}
			t.flush()
			return nil
		},
	}
	return []*cobra.Command{approve, deny, pending, a.requestStatusCmd()}
}
