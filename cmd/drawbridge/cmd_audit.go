package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/audit"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/jit"
)

func (a *app) auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "List, export and verify the audit log"}
	var f client.AuditFilter
	var since string
	parse := func() error {
		if since == "" {
			return nil
		}
		if d, err := jit.ParseDuration(since); err == nil && d > 0 {
			f.Since = time.Now().Add(-d)
			return nil
		}
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			return fmt.Errorf("--since: %q is neither an RFC 3339 time nor a duration such as 24h or P1D", since)
		}
		f.Since = t
		return nil
	}
	addFilters := func(c *cobra.Command) {
		fl := c.Flags()
		fl.StringVar(&since, "since", "", "records at or after this time (RFC 3339) or this long ago (24h, P1D)")
		fl.StringVar(&f.Principal, "principal", "", "only records of this principal")
		fl.StringVar(&f.VM, "vm", "", "only records whose target is this resource ID or below it")
		fl.IntVar(&f.Limit, "limit", 0, "only the newest N records")
	}
	// fetch reads the records the filter flags select.
	fetch := func(cmd *cobra.Command) ([]audit.Record, error) {
		if err := parse(); err != nil {
			return nil, err
		}
		c, err := a.client()
		if err != nil {
			return nil, err
		}
		return c.Audit(cmd.Context(), f)
	}
	list := &cobra.Command{
		Use:   "list [--since T] [--principal NAME] [--vm ID]",
		Short: "List audit records",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			recs, err := fetch(cmd)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printData(recs)
			}
			t := newTable(a.stdout, "SEQ", "TIME", "PRINCIPAL", "SOURCE", "OPERATION", "TARGET", "RESULT", "DETAIL")
			for _, r := range recs {
				t.row(fmt.Sprint(r.Seq), fmtTime(r.Time), r.Principal, r.SourceAddress, r.Operation, r.Target, r.Result, r.Detail)
			}
			t.flush()
			return nil
		},
	}
	addFilters(list)
	export := &cobra.Command{
		Use:   "export [--since T] [--principal NAME] [--vm ID]",
		Short: "Write audit records as JSON lines, with their hashes",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := parse(); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			// A page at a time: memory stays bounded however long the log.
			enc := json.NewEncoder(a.stdout)
			return c.AuditPages(cmd.Context(), f, func(page []audit.Record) error {
				for _, r := range page {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	addFilters(export)
	cmd.AddCommand(list, export, a.auditVerifyCmd(), a.auditCheckpointCmd())
	return cmd
}
