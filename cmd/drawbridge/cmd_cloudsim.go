//go:build !drawbridge_client

package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/cloudsim/armsim"
	"github.com/drawbridge/drawbridge/internal/inventory"
)

// addCloudsimAzure adds `cloudsim azure`: the ARM wire simulator as a
// process, to try `inventory sync azure` and provider azure without a
// subscription.
func (a *app) addCloudsimAzure(root *cobra.Command) {
	parent := subCmd(root, "cloudsim", "Serve a simulated cloud API (for trying drawbridge without an account)")
	var (
		listen, caFile, file string
		pageSize             int
		faults               armsim.Faults
	)
	cmd := &cobra.Command{
		Use:   "azure [--listen ADDR] [--ca-file FILE] [-f INVENTORY]",
		Short: "Serve Azure Resource Manager's network and compute API over HTTPS, simulated",
		Long: `Serve a simulated Azure Resource Manager (NSGs and security rules, NICs, virtual
networks and subnets, public IPs, Azure Firewalls, VMs) over HTTPS with a
generated certificate, written to --ca-file. It holds the Azure part of the
built-in sample inventory, or of -f FILE. Clients send any bearer token: set
DRAWBRIDGE_ARM_TOKEN and pass --arm-endpoint and --arm-ca-file to drawbridge.`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			inv := inventory.Sample()
			if file != "" {
				data, err := os.ReadFile(file)
				if err != nil {
					return fmt.Errorf("-f: %v", err)
				}
				if inv, err = inventory.Parse(data); err != nil {
					return fmt.Errorf("-f: %v", err)
				}
			}
			s, err := armsim.Start(armsim.Options{PageSize: pageSize}, listen)
			if err != nil {
				return err
			}
			defer s.Close()
			s.SetFaults(faults)
			s.Load(inv)
			if err := os.WriteFile(caFile, s.CAPEM(), 0o644); err != nil {
				return fmt.Errorf("--ca-file: %w", err)
			}
			fmt.Fprintf(a.stdout, "ARM simulator listening on %s (certificate in %s)\n", s.URL(), caFile)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			fmt.Fprintf(a.stderr, "ARM simulator stopping: %v\n", context.Cause(ctx))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8443", "address to serve HTTPS on")
	f.StringVar(&caFile, "ca-file", "armsim-ca.pem", "where to write the simulator's certificate (PEM)")
	f.StringVarP(&file, "file", "f", "", "inventory document whose Azure objects to serve (default: the built-in sample)")
	f.IntVar(&pageSize, "page-size", 100, "items per list page before a nextLink")
	f.Float64Var(&faults.ThrottleRate, "throttle-rate", 0, "fraction of requests answered 429 with Retry-After")
	f.Float64Var(&faults.ErrorRate, "error-rate", 0, "fraction of requests answered 500")
	f.Float64Var(&faults.WritesPerSecond, "writes-per-second", 0, "throttle writes with a token bucket of this rate (0: none)")
	f.IntVar(&faults.WriteBurst, "write-burst", 100, "the write token bucket's size")
	f.Float64Var(&faults.SlowRate, "slow-rate", 0, "fraction of requests answered only after --slow")
	durationFlag(f, &faults.Slow, "slow", 200*time.Millisecond, "delay of a slow answer")
	parent.AddCommand(cmd)
}
