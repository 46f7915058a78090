package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/agent"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/provider/nftables"
)

func (a *app) agentCmd() *cobra.Command {
	var (
		vm        string
		netnsPath string
		heartbeat time.Duration
		maxBack   time.Duration
		debug     bool
	)
	cmd := &cobra.Command{
		Use:   "agent --server URL --token T --vm ID [--netns PATH]",
		Short: "Keep this host's nftables JIT table equal to the server's grants",
		Long: `Run the host agent until SIGINT or SIGTERM. It streams the desired JIT
state of one VM (an inventory VM with provider "nftables") from the server,
applies it to the "inet drawbridge" nftables table, and reports which grants
the kernel enforces. Grants end by kernel timeout, so they close on time even
while the agent or the server is down. It needs CAP_NET_ADMIN.

--netns PATH programs the nftables of that network namespace (for example
/run/netns/vm) while the agent's own connections stay in its namespace.`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if vm == "" {
				return errors.New("--vm: the VM's resource ID is required")
			}
			srv, tok := a.serverAndToken()
			transport, err := client.Transport(a.caPath())
			if err != nil {
				return fmt.Errorf("--ca-file: %w", err)
			}
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
			opts := nftables.Options{}
			if netnsPath != "" {
				f, err := os.Open(netnsPath)
				if err != nil {
					return fmt.Errorf("--netns: %w", err)
				}
				defer f.Close()
				opts.NetNS = int(f.Fd())
			}
			fw := nftables.NewKernel(opts)
			defer fw.Close()
			ag, err := agent.New(agent.Config{
				Server: srv, Token: tok, VM: vm,
				HTTP:             &http.Client{Transport: transport},
				Firewall:         fw,
				Logger:           log,
				HeartbeatTimeout: heartbeat,
				MaxBackoff:       maxBack,
			})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log.Info("agent starting", "server", srv, "vm", vm, "netns", netnsPath)
			_ = ag.Run(ctx)
			log.Info("agent stopped; the kernel keeps enforcing the table")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&vm, "vm", "", "resource ID of this host's VM in the inventory")
	f.StringVar(&netnsPath, "netns", "", "network namespace whose nftables to manage (path, e.g. /run/netns/NAME)")
	f.DurationVar(&heartbeat, "heartbeat-timeout", 30*time.Second, "reconnect when the stream is silent this long")
	f.DurationVar(&maxBack, "max-backoff", 30*time.Second, "longest delay between reconnects")
	f.BoolVar(&debug, "debug", false, "log every apply")
	return cmd
}
