package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

func (a *app) roleCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "role", Short: "List, get and create roles; assign and unassign them"}
	list := &cobra.Command{
		Use:   "list",
		Short: "List roles and role assignments",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			rs, err := c.Roles(cmd.Context())
			if err != nil {
				return err
			}
			as, err := c.Assignments(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return a.printData(map[string]any{"roles": rs, "assignments": as})
			}
			t := newTable(a.stdout, "ROLE", "CUSTOM", "DESCRIPTION")
			for _, r := range rs {
				t.row(r.Name, fmt.Sprint(r.IsCustom), r.Description)
			}
			t.flush()
			fmt.Fprintln(a.stdout)
			t = newTable(a.stdout, "ASSIGNMENT", "ROLE", "PRINCIPAL", "TYPE", "SCOPE")
			for _, x := range as {
				t.row(x.ID, x.Role, x.Principal, string(x.PrincipalType), x.Scope)
			}
			t.flush()
			return nil
		},
	}
	get := getVerb(&cobra.Command{
		Use:   "get NAME",
		Short: "Show a role definition (Azure's JSON shape)",
		Args:  exactArgs(1, "a role name or ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			r, err := c.Role(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.printData(r)
		},
	})
	var file string
	create := &cobra.Command{
		Use:   "create -f FILE",
		Short: "Create a custom role from an Azure role definition (JSON)",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return fmt.Errorf("-f: a role definition file is required")
			}
			doc, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("-f: %w", err)
			}
			// Checked here too, so a bad file fails before any network call.
			if _, err := rbac.ParseRoleDefinition(doc); err != nil {
				return fmt.Errorf("-f %s: %w", file, err)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			r, err := c.CreateRole(cmd.Context(), doc)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printData(r)
			}
			fmt.Fprintf(a.stdout, "role %q created (id %s)\n", r.Name, r.ID)
			return nil
		},
	}
	create.Flags().StringVarP(&file, "file", "f", "", "role definition JSON file")

	var in api.AssignmentBody
	var (
		group bool
		ptype string
	)
	assign := &cobra.Command{
		Use:   "assign --role NAME --principal NAME [--principal-type group] --scope RESOURCE-ID",
		Short: "Assign a role to a principal (or group) at a scope",
		Example: `  drawbridge role assign --role 'JIT Network Access Requester' --principal alice --scope /subscriptions/s1/resourceGroups/rg1
  drawbridge role assign --role Reader --principal ops --principal-type group --scope /subscriptions/s1`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			for flag, v := range map[string]string{"--role": in.Role, "--principal": in.Principal, "--scope": in.Scope} {
				if strings.TrimSpace(v) == "" {
					return fmt.Errorf("%s: required", flag)
				}
			}
			pt, err := principalType(ptype)
			if err != nil {
				return err
			}
			in.PrincipalType = pt
			if a.warnOldFlag(cmd, "group", "--principal-type group") && group {
				if cmd.Flags().Changed("principal-type") && pt != rbac.PrincipalGroup {
					return usageError(fmt.Errorf("--group contradicts --principal-type %s", ptype))
				}
				in.PrincipalType = rbac.PrincipalGroup
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.Assign(cmd.Context(), in)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printData(out)
			}
			fmt.Fprintf(a.stdout, "assignment %s: %s %q has %q at %s\n", out.ID, strings.ToLower(string(out.PrincipalType)), out.Principal, out.Role, out.Scope)
			return nil
		},
	}
	af := assign.Flags()
	af.StringVar(&in.Role, "role", "", "role name or ID")
	af.StringVar(&in.Principal, "principal", "", "principal (or group) name")
	af.StringVar(&ptype, "principal-type", "user", "what --principal names: user or group")
	af.BoolVar(&group, "group", false, "deprecated: use --principal-type group")
	oldFlag(assign, "group")
	_ = assign.RegisterFlagCompletionFunc("principal-type", cobra.FixedCompletions([]string{"user", "group"}, cobra.ShellCompDirectiveNoFileComp))
	af.StringVar(&in.Scope, "scope", "", "resource ID the assignment applies at and below (\"/\" for everything)")

	unassign := &cobra.Command{
		Use:   "unassign ASSIGNMENT-ID",
		Short: "Delete a role assignment",
		Args:  exactArgs(1, "an assignment ID (from role list)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.Unassign(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return a.printData(out)
			}
			fmt.Fprintf(a.stdout, "assignment %s removed\n", out.ID)
			return nil
		},
	}
	cmd.AddCommand(list, get, create, assign, unassign)
	return cmd
}
