package main

import (
	"errors"
	"fmt"
	"sort"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/spf13/cobra"
)

func (a *app) requestCmd() *cobra.Command {
	var (
		ports                           []int
		duration, source, justification string
		wait                            bool
	)
	cmd := &cobra.Command{
		Use:     "request VM --port N [--port N] --duration D [--source ADDR] [--justification TEXT]",
		Short:   "Request access to a VM's ports",
		Example: "  drawbridge request web-01 --port 22 --duration 1h --source 198.18.0.7 --justification 'patching'",
		Args:    exactArgs(1, "VM"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if len(ports) == 0 {
				return errors.New("--port: at least one port is required")
			}
			if duration == "" {
				return errors.New("--duration: required (e.g. 1h, 90s or PT1H)")
			}
			ctx := cmd.Context()
			r, vmID, err := requestVM(ctx, c, args[0], api.SimpleRequest{Ports: ports, Duration: duration, Source: source, Justification: justification})
			if err != nil {
				return err
			}
			if wait {
				return a.printWaited(ctx, c, r.ID, vmID)
			}
			if a.json() {
				return a.printData(r)
			}
			fmt.Fprintf(a.stdout, "request %s\n", safeText(r.ID))
			printRequest(a.stdout, r)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&wait, "wait", false, "block until the request is open, denied or lapsed (exit 8 if denied or lapsed)")
	f.IntSliceVar(&ports, "port", nil, "port to open (repeatable)")
	f.StringVar(&duration, "duration", "", "how long: 1h, 90s, PT1H")
	f.StringVar(&source, "source", "", "source address or prefix (default: your address as the server sees it)")
	f.StringVar(&justification, "justification", "", "why you need access")
	return cmd
}

func (a *app) grantsCmd() *cobra.Command {
	var (
		vmArg  string
		active bool
	)
	cmd := &cobra.Command{
		Use:   "grants [--vm VM] [--active]",
		Short: "List grants",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			vmID := ""
			if vmArg != "" {
				vm, err := resolveVM(ctx, c, vmArg)
				if err != nil {
					return err
				}
				vmID = vm.ID
			}
			gs, err := c.GrantViews(ctx, vmID, active)
			if err != nil {
				return err
			}
			sortGrantViews(gs)
			if a.json() {
				return a.printData(gs)
			}
			printGrantsAt(a.stdout, gs, a.now(), a.wide())
			return nil
		},
	}
	cmd.Flags().StringVar(&vmArg, "vm", "", "only this VM's grants")
	cmd.Flags().BoolVar(&active, "active", false, "only grants in force (status Initiated)")
	return cmd
}

func sortGrantViews(gs []api.GrantView) {
	sort.SliceStable(gs, func(i, j int) bool { return grantLess(gs[i].Grant, gs[j].Grant) })
}

func grantLess(a, b jit.Grant) bool {
	{
		if !a.StartTime.Equal(b.StartTime) {
			return a.StartTime.After(b.StartTime)
		}
		if a.VMID != b.VMID {
			return a.VMID < b.VMID
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		return a.ID < b.ID
	}
}

func (a *app) revokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke GRANT_ID",
		Short: "End a grant now",
		Args:  exactArgs(1, "GRANT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			g, err := c.Revoke(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return a.printData(g)
			}
			printGrantsAt(a.stdout, []api.GrantView{{Grant: g}}, a.now(), a.wide())
			return nil
		},
	}
}
