// Command drawbridge is the JIT access server, its CLI and a
// self-contained demo. The CLI only wires flags to the API client and
// formats what the server answers; every rule lives in the server.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/client"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// app carries what every command needs: where to write and how to reach
// the server.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string

	server string // --server
	token  string // --token
	output string // -o
	caFile string // --ca-file

	context string // --context: a saved login (cmd_login.go)
	utc     bool   // --utc: times in tables in UTC, not local time
}

const defaultServer = "http://127.0.0.1:8080"

// demoHint ends the root's help; the client-only build drops it.
const demoHint = `Run "drawbridge demo" to see everything on a built-in simulated network.`

// run executes the command line args and returns the exit code. Errors are
// reported as one line on stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdout: stdout, stderr: stderr, getenv: getenv}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "drawbridge: "+safeText(oneLine(err.Error())))
		return exitCode(err)
	}
	return 0
}

// oneLine folds a multi-line message into one line.
func oneLine(s string) string {
	lines := strings.FieldsFunc(strings.TrimSpace(s), func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "drawbridge",
		Short: "Just-in-time access to management ports",
		Long: `drawbridge keeps management ports (SSH, RDP, WinRM, ...) closed and opens
them for one source address for a bounded time, then restores the firewall.

Client commands find the server through --server or DRAWBRIDGE_SERVER
(default ` + defaultServer + `) and send --token or DRAWBRIDGE_TOKEN as a bearer token.
` + demoHint,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// `drawbridge completion bash|zsh|fish|powershell` is cobra's own.
	root.CompletionOptions.HiddenDefaultCmd = false
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	pf := root.PersistentFlags()
	pf.StringVar(&a.server, "server", "", "server URL (default $DRAWBRIDGE_SERVER or "+defaultServer+")")
	pf.StringVar(&a.token, "token", "", "bearer token (default $DRAWBRIDGE_TOKEN)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table, wide (full resource IDs), json or yaml (for scripts)")
	pf.StringVar(&a.context, "context", "", "saved login to use (default $DRAWBRIDGE_CONTEXT, else the current one; see drawbridge login)")
	pf.BoolVar(&a.utc, "utc", false, "print times in grant and request tables in UTC (default: local time, from TZ)")
	pf.StringVar(&a.caFile, "ca-file", "", "PEM CA certificate(s) to verify an https:// server with, instead of the system roots (default $DRAWBRIDGE_CA_FILE)")

	root.AddCommand(a.policyCmd(), a.requestCmd(), a.grantsCmd(), a.revokeCmd(),
		a.vmCmd(), a.networkCmd(), a.inventoryCmd(), a.assessCmd())
	root.AddCommand(a.versionCmd())
	root.AddCommand(a.tokenCmd(), a.roleCmd(), a.auditCmd(), a.loginCmd(), a.logoutCmd())
	// server, agent, demo, inventory sync, cloudsim: none in the
	// client-only build (commands_full.go, commands_client.go).
	a.addOperatorCommands(root)
	if rc, _, err := root.Find([]string{"request"}); err == nil && rc != root {
		rc.AddCommand(a.approvalCmds()...) // request approve|deny|pending
	}
	rejectUnknownSubcommands(root)
	return root
}

// serverAndToken returns the server URL and API token: --server and
// --token; then a context named by --context or DRAWBRIDGE_CONTEXT; then
// DRAWBRIDGE_SERVER and DRAWBRIDGE_TOKEN; then the current saved context;
// the server defaults to defaultServer.
func (a *app) serverAndToken() (server, token string, err error) {
	server, token = a.server, a.token
	if server != "" && token != "" {
		return server, token, nil // flags say it all (login, scripts)
	}
	saved, explicit, err := a.savedContext()
	if err != nil {
		return "", "", err
	}
	pick := func(v *string, env, fromCtx string) {
		switch {
		case *v != "":
		case explicit && fromCtx != "":
			*v = fromCtx
		case a.getenv(env) != "":
			*v = a.getenv(env)
		default:
			*v = fromCtx
		}
	}
	pick(&server, "DRAWBRIDGE_SERVER", saved.Server)
	pick(&token, "DRAWBRIDGE_TOKEN", saved.Token)
	if server == "" {
		server = defaultServer
	}
	return server, token, nil
}

// client builds the API client from flags and environment.
func (a *app) client() (*client.Client, error) {
	if a.output != "table" && a.output != "json" && a.output != "yaml" && a.output != "wide" {
		return nil, usageError(fmt.Errorf("--output: %q is not a format; use table, wide, json or yaml", a.output))
	}
	server, token, err := a.serverAndToken()
	if err != nil {
		return nil, err
	}
	c, err := client.New(server, token)
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	if err := client.WithCAFile(a.caPath())(c); err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	if err := a.keepFresh(c, token); err != nil { // a saved OIDC sign-in (login_oidc.go)
		return nil, err
	}
	return c, nil
}

// caPath is --ca-file, else $DRAWBRIDGE_CA_FILE.
func (a *app) caPath() string {
	if a.caFile != "" {
		return a.caFile
	}
	return a.getenv("DRAWBRIDGE_CA_FILE")
}

// json is -o json or -o yaml: output for scripts, printed by printData.
func (a *app) json() bool { return a.output == "json" || a.output == "yaml" }

// wide is -o wide: tables with full resource IDs.
func (a *app) wide() bool { return a.output == "wide" }

var errUsage = errors.New("usage")
