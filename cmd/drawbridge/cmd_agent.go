//go:build !drawbridge_client

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/agent"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/provider/agenthub"
	"github.com/drawbridge/drawbridge/internal/provider/nftables"
)

// defaultStateFile is where the agent keeps its last applied snapshot.
const defaultStateFile = "/var/lib/drawbridge/agent-state.json"

type agentFlags struct {
	vm, netnsPath, stateFile, tokenFile, guardPorts string
	heartbeat, maxBack, offlineGrace                time.Duration
	debug, restore, status                          bool
	logFormat                                       string
}

func (a *app) agentCmd() *cobra.Command {
	var fl agentFlags
	cmd := &cobra.Command{
		Use:   "agent --server URL --vm ID [--token-file PATH] [--netns PATH]",
		Short: "Keep this host's nftables JIT table equal to the server's grants",
		Long: `Run the host agent until SIGINT or SIGTERM. It streams the desired JIT
state of one VM (an inventory VM with provider "nftables") from the server,
applies it to the "inet drawbridge" nftables table, and reports which grants
the kernel enforces. Grants end by kernel timeout, so they close on time even
while the agent or the server is down. It needs CAP_NET_ADMIN.

It fails closed. At start, before contacting the server, it denies the
guarded ports of its state file (--state-file: the last snapshot it applied)
and of --guard-ports; if the server cannot be reached it also reopens the
file's grants that have not ended. It watches nftables (netlink
notifications, no polling) and restores its table within milliseconds when
anyone else deletes or changes it (nft flush ruleset, a restart of
nftables.service), and reports the repair to the server (audit "drift").

The token comes from --token-file, --token or DRAWBRIDGE_TOKEN.

--restore puts the state file's guard and unexpired grants into the kernel
once and exits, without contacting the server (for boot and for after
nftables.service reloads). --status prints the state file.

--netns PATH programs the nftables of that network namespace (for example
/run/netns/vm) while the agent's own connections stay in its namespace.`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runAgent(cmd.Context(), fl) },
	}
	f := cmd.Flags()
	f.StringVar(&fl.vm, "vm", "", "resource ID of this host's VM in the inventory")
	f.StringVar(&fl.netnsPath, "netns", "", "network namespace whose nftables to manage (path, e.g. /run/netns/NAME)")
	f.StringVar(&fl.stateFile, "state-file", defaultStateFile, "where the last applied snapshot is kept (\"\" for none)")
	f.StringVar(&fl.tokenFile, "token-file", "", "read the bearer token from this file")
	f.StringVar(&fl.guardPorts, "guard-ports", "", "ports to deny from the first second, even with no state file and no server (e.g. 22,3389 or 53/udp)")
	durationFlag(f, &fl.heartbeat, "heartbeat-timeout", 30*time.Second, "reconnect when the stream is silent this long")
	durationFlag(f, &fl.maxBack, "max-backoff", 3*time.Second, "longest delay between reconnects")
	durationFlag(f, &fl.offlineGrace, "offline-grace", 2*time.Second, "at start, how long to wait for the server before reopening the state file's grants")
	f.BoolVar(&fl.debug, "debug", false, "log every apply")
	f.BoolVar(&fl.restore, "restore", false, "restore the state file into the kernel once and exit")
	f.BoolVar(&fl.status, "status", false, "print the state file (last snapshot, drift repairs) and exit")
	f.StringVar(&fl.logFormat, "log-format", "text", "log format: text or json")
	a.configurable(cmd, "server", "token")
	commandLineOnly(f, "restore", "status")
	return cmd
}

func (a *app) runAgent(ctx context.Context, fl agentFlags) error {
	if fl.status {
		sf, err := agent.LoadState(fl.stateFile)
		if err != nil {
			return err
		}
		if sf == nil {
			return fmt.Errorf("--state-file: %s does not exist", fl.stateFile)
		}
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sf)
	}
	guard, err := parseGuardPorts(fl.guardPorts)
	if err != nil {
		return err
	}
	if fl.vm == "" && !fl.restore {
		return errors.New("--vm: the VM's resource ID is required")
	}
	srv, tok, err := a.serverAndToken()
	if err != nil {
		return err
	}
	if fl.tokenFile != "" {
		b, err := os.ReadFile(fl.tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	log, err := newLogger(a.stderr, fl.logFormat, fl.debug)
	if err != nil {
		return err
	}
	opts := nftables.Options{}
	if fl.netnsPath != "" {
		f, err := os.Open(fl.netnsPath)
		if err != nil {
			return fmt.Errorf("--netns: %w", err)
		}
		defer f.Close()
		opts.NetNS = int(f.Fd())
	}
	fw := nftables.NewKernel(opts)
	defer fw.Close()
	if fl.restore {
		what, err := agent.Restore(ctx, fw, fl.stateFile, fl.vm, guard)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		log.Info(what)
		return nil
	}
	transport, err := client.Transport(a.caPath())
	if err != nil {
		return fmt.Errorf("--ca-file: %w", err)
	}
	ag, err := agent.New(agent.Config{
		Server: srv, Token: tok, VM: fl.vm,
		HTTP:             &http.Client{Transport: transport},
		Firewall:         fw,
		Logger:           log,
		HeartbeatTimeout: fl.heartbeat,
		MaxBackoff:       fl.maxBack,
		StateFile:        fl.stateFile,
		GuardPorts:       guard,
		OfflineGrace:     fl.offlineGrace,
		Watch: func(ctx context.Context, ready chan<- struct{}, fn func(nftables.Change)) error {
			return nftables.Watch(ctx, opts.NetNS, ready, fn)
		},
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Info("agent starting", "server", srv, "vm", fl.vm, "netns", fl.netnsPath, "state_file", fl.stateFile)
	_ = ag.Run(ctx)
	log.Info("agent stopped; the kernel keeps enforcing the table")
	return nil
}

// parseGuardPorts parses "22,3389,53/udp": a port alone guards TCP and UDP.
func parseGuardPorts(s string) ([]agenthub.SnapshotPort, error) {
	var out []agenthub.SnapshotPort
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		port, proto, _ := strings.Cut(f, "/")
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("--guard-ports: %q is not a port in 1..65535", f)
		}
		p := "*"
		switch strings.ToLower(proto) {
		case "":
		case "tcp":
			p = "Tcp"
		case "udp":
			p = "Udp"
		default:
			return nil, fmt.Errorf("--guard-ports: %q: protocol must be tcp or udp", f)
		}
		out = append(out, agenthub.SnapshotPort{Port: n, Protocol: p})
	}
	return out, nil
}
