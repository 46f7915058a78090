package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/api"
)

func (a *app) tokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke API tokens"}
	var in api.TokenCreateRequest
	create := &cobra.Command{
		Use:     "create --principal NAME [--expires 30d] [--agent-vm ID] [--group G]",
		Short:   "Create an API token (shown once; only its hash is stored)",
		Example: "  drawbridge token create --principal alice --expires 30d",
		Args:    exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if in.Principal == "" {
				return fmt.Errorf("--principal: required")
			}
			if _, err := api.ParseExpiry(in.Expires); err != nil {
				return fmt.Errorf("--%w", err)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.CreateToken(cmd.Context(), in)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printData(out)
			}
			fmt.Fprintln(a.stdout, out.Token)
			fmt.Fprintf(a.stderr, "token %s for %s (%s), expires %s; it is shown only this once\n", out.Record.ID, safeText(out.Record.Principal), out.Record.Kind, orNever(fmtTime(out.Record.ExpiresAt)))
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&in.Principal, "principal", "", "who the token acts as")
	f.StringVar(&in.Expires, "expires", "", "lifetime: 30d, 12h, 90m or ISO 8601 (P30D) (default: never)")
	f.StringVar(&in.AgentVM, "agent-vm", "", "make an agent token that may only read and report for this VM (resource ID)")
	f.StringSliceVar(&in.Groups, "group", nil, "a group the principal is in (repeatable; for group role assignments and approvals)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List API tokens",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ts, err := c.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return a.printData(ts)
			}
			t := newTable(a.stdout, "ID", "PRINCIPAL", "KIND", "GROUPS", "VM", "CREATED", "EXPIRES", "REVOKED")
			for _, tok := range ts {
				t.row(tok.ID, tok.Principal, string(tok.Kind), strings.Join(tok.Groups, ","), tok.VMID, fmtTime(tok.CreatedAt), fmtTime(tok.ExpiresAt), fmtTime(tok.RevokedAt))
			}
			t.flush()
			return nil
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token by its ID (from token list)",
		Args:  exactArgs(1, "a token ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			tok, err := c.RevokeToken(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return a.printData(tok)
			}
			fmt.Fprintf(a.stdout, "token %s of %s revoked at %s\n", tok.ID, safeText(tok.Principal), fmtTime(tok.RevokedAt))
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func orNever(s string) string {
	if s == "" {
		return "never"
	}
	return s
}
