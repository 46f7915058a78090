package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Asia/Tokyo for the --utc test, whatever the machine has

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/config"
)

// Reading commands are "get"; the older "show" answers the same, and is
// not offered in help.
func TestGetVerbWithShowAlias(t *testing.T) {
	u := startServer(t).URL
	ok(t, u, "policy", "set", "web-01", "--port", "22")
	for _, args := range [][]string{{"policy", "get", "web-01"}, {"network", "get", "web-01"}, {"role", "get", "Reader"}} {
		got := ok(t, u, args...)
		old := append([]string{args[0], "show"}, args[2:]...)
		if again := ok(t, u, old...); again != got {
			t.Errorf("drawbridge %s differs from %s:\n%s\n---\n%s", strings.Join(old, " "), strings.Join(args, " "), again, got)
		}
		help := ok(t, u, args[0], "--help")
		if !strings.Contains(help, "  get ") || strings.Contains(help, "  show ") {
			t.Errorf("drawbridge %s --help should list get and not show:\n%s", args[0], help)
		}
	}
	// No other reading command is called show.
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Name() == "show" {
			t.Errorf("%s: reading commands are get (show is an alias)", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk((&app{getenv: func(string) string { return "" }}).rootCmd())
}

// policy set --allowed-source and role assign --principal-type; the old
// --source and --group still work, with a warning on stderr.
func TestRenamedFlagsWarnAndWork(t *testing.T) {
	u := startServer(t).URL
	// --allowed-source: no warning (ok fails on any stderr).
	p := decodeJSON[api.PolicyResource](t, ok(t, u, "policy", "set", "web-01", "--port", "22", "--allowed-source", "198.18.0.0/15", "-o", "json"))
	if got := p.Properties.VirtualMachines[0].Ports[0].AllowedSourceAddressPrefix; got != "198.18.0.0/15" {
		t.Fatalf("--allowed-source: stored %q", got)
	}
	r := cli(t, u, "policy", "set", "web-01", "--port", "22", "--source", "198.19.0.0/16", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stderr, "--source is deprecated; use --allowed-source") {
		t.Fatalf("policy set --source: %+v", r)
	}
	p = decodeJSON[api.PolicyResource](t, r.stdout)
	if got := p.Properties.VirtualMachines[0].Ports[0].AllowedSourceAddressPrefix; got != "198.19.0.0/16" {
		t.Fatalf("--source (old): stored %q", got)
	}
	if h := ok(t, u, "policy", "set", "--help"); strings.Contains(h, "--source") || !strings.Contains(h, "--allowed-source") {
		t.Errorf("policy set --help should offer --allowed-source only:\n%s", h)
	}

	const scope = "/subscriptions/00000000-0000-0000-0000-000000000001"
	assign := func(args ...string) result {
		return cli(t, u, append([]string{"role", "assign", "--role", "Reader", "--scope", scope, "-o", "json"}, args...)...)
	}
	for _, tc := range []struct {
		args     []string
		typ      string
		warn     bool
		exitCode int
	}{
		{[]string{"--principal", "ops", "--principal-type", "group"}, "Group", false, 0},
		{[]string{"--principal", "ann", "--principal-type", "User"}, "User", false, 0},
		{[]string{"--principal", "bob"}, "User", false, 0},
		{[]string{"--principal", "devs", "--group"}, "Group", true, 0},
		{[]string{"--principal", "x", "--principal-type", "robot"}, "", false, exitUsage},
		{[]string{"--principal", "x", "--principal-type", "user", "--group"}, "", true, exitUsage},
	} {
		r := assign(tc.args...)
		if r.code != tc.exitCode || strings.Contains(r.stderr, "deprecated") != tc.warn {
			t.Errorf("role assign %v: %+v", tc.args, r)
			continue
		}
		if tc.exitCode == 0 {
			if got := decodeJSON[api.AssignmentBody](t, r.stdout).PrincipalType; string(got) != tc.typ {
				t.Errorf("role assign %v: principal type %q, want %q", tc.args, got, tc.typ)
			}
		}
	}
}

// Every duration flag of every command takes ISO 8601 and Go syntax.
func TestEveryDurationFlagTakesBothForms(t *testing.T) {
	n := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Value.Type() != "duration" {
				return
			}
			n++
			for in, want := range map[string]time.Duration{"PT1H30M": 90 * time.Minute, "90s": 90 * time.Second, "P1D": 24 * time.Hour} {
				if err := f.Value.Set(in); err != nil {
					t.Errorf("%s --%s %s: %v", c.CommandPath(), f.Name, in, err)
				} else if got := f.Value.String(); got != want.String() {
					t.Errorf("%s --%s %s = %s, want %s", c.CommandPath(), f.Name, in, got, want)
				}
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk((&app{getenv: func(string) string { return "" }}).rootCmd())
	if n < 8 {
		t.Fatalf("found %d duration flags, want the server's and agent's (at least 8)", n)
	}
	// The same from the environment and from a --config file.
	srvCmd, _, err := (&app{getenv: func(string) string { return "" }}).rootCmd().Find([]string{"server"})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DRAWBRIDGE_SHUTDOWN_TIMEOUT": "PT5S"}
	if err := config.Apply(configFlags(srvCmd), func(k string) string { return env[k] }, map[string]any{"approval-timeout": "PT2H"}); err != nil {
		t.Fatal(err)
	}
	if a, b := srvCmd.Flags().Lookup("shutdown-timeout").Value.String(), srvCmd.Flags().Lookup("approval-timeout").Value.String(); a != "5s" || b != "2h0m0s" {
		t.Errorf("from environment and file: shutdown-timeout %s, approval-timeout %s; want 5s, 2h0m0s", a, b)
	}

	// The string durations the server parses: policy maximum, request,
	// token lifetime, audit --since.
	u := startServer(t).URL
	p := decodeJSON[api.PolicyResource](t, ok(t, u, "policy", "set", "web-01", "--port", "22", "--max-duration", "3h", "-o", "json"))
	if got := p.Properties.VirtualMachines[0].Ports[0].MaxRequestAccessDuration; got != "PT3H" {
		t.Errorf("--max-duration 3h stored as %q, want PT3H", got)
	}
	ok(t, u, "policy", "set", "web-01", "--port", "22", "--max-duration", "PT2H")
	ok(t, u, "request", "web-01", "--port", "22", "--duration", "PT1H", "--source", "198.18.0.1")
	ok(t, u, "request", "web-01", "--port", "22", "--duration", "90m", "--source", "198.18.0.2")
	for _, exp := range []string{"P30D", "30d", "PT12H", "12h"} {
		r := cli(t, u, "token", "create", "--principal", "t-"+exp, "--expires", exp)
		if r.code != 0 {
			t.Errorf("token create --expires %s: %+v", exp, r)
		}
	}
	if r := cli(t, u, "token", "create", "--principal", "bad", "--expires", "PT"); r.code != exitUsage || !strings.Contains(r.stderr, "expires") {
		t.Errorf("token create --expires PT: %+v", r)
	}
	for _, since := range []string{"PT1H", "1h", "P1D"} {
		if out := ok(t, u, "audit", "list", "--since", since); !strings.Contains(out, "policy.put") {
			t.Errorf("audit list --since %s lacks the policy change:\n%s", since, out)
		}
	}
}

// policy delete -o json prints JSON, whether it removes one VM from a
// policy or deletes the policy.
func TestPolicyDeleteJSON(t *testing.T) {
	u := startServer(t).URL
	ok(t, u, "policy", "set", "web-01", "--port", "22")
	ok(t, u, "policy", "set", "win-01", "--port", "3389")
	removed := decodeJSON[map[string]string](t, ok(t, u, "policy", "delete", "web-01", "-o", "json"))
	if !strings.HasSuffix(removed["removedVm"], "/web-01") || removed["policy"] == "" {
		t.Errorf("policy delete web-01 -o json = %v", removed)
	}
	deleted := decodeJSON[map[string]string](t, ok(t, u, "policy", "delete", "win-01", "-o", "json"))
	if !strings.HasSuffix(deleted["deletedPolicy"], "/jitNetworkAccessPolicies/default") {
		t.Errorf("policy delete win-01 -o json = %v", deleted)
	}
}

// Grant tables show clock times in local time (TZ), or UTC with --utc.
func TestGrantTimesLocalOrUTC(t *testing.T) {
	u := startServer(t).URL
	runTZ := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		env := func(k string) string {
			switch k {
			case "DRAWBRIDGE_TOKEN":
				return tokenFor(u)
			case "TZ":
				return "Asia/Tokyo"
			}
			return ""
		}
		if code := run(context.Background(), append([]string{"--server", u}, args...), &out, &errb, env); code != 0 {
			t.Fatalf("drawbridge %v: exit %d, %s", args, code, errb.String())
		}
		return out.String()
	}
	ok(t, u, "policy", "set", "web-01", "--port", "22")
	ok(t, u, "request", "web-01", "--port", "22", "--duration", "1h", "--source", "198.18.0.1")
	ok(t, u, "request", "web-01", "--port", "22", "--duration", "1h", "--source", "198.18.0.2") // ends the first
	wideTokyo, wideUTC := runTZ("grants", "-o", "wide"), runTZ("grants", "-o", "wide", "--utc")
	if !regexp.MustCompile(`T\d\d:\d\d:\d\d\+09:00`).MatchString(wideTokyo) || strings.Contains(wideTokyo, "Z ") {
		t.Errorf("grants -o wide with TZ=Asia/Tokyo: want end times at +09:00:\n%s", wideTokyo)
	}
	if !regexp.MustCompile(`T\d\d:\d\d:\d\dZ`).MatchString(wideUTC) || strings.Contains(wideUTC, "+09:00") {
		t.Errorf("grants -o wide --utc: want end times in UTC:\n%s", wideUTC)
	}
	// The ended grant says when it ended as a clock time: in Tokyo, nine
	// hours ahead of UTC, and marked Z with --utc.
	tokyo, utc := runTZ("grants"), runTZ("grants", "--utc")
	now := time.Now()
	wantTokyo := now.In(time.FixedZone("JST", 9*3600)).Format("15:04")
	if !strings.Contains(tokyo, wantTokyo+", replaced by admin") && !strings.Contains(tokyo, now.Add(-time.Minute).In(time.FixedZone("JST", 9*3600)).Format("15:04")+", replaced") {
		t.Errorf("grants with TZ=Asia/Tokyo: want the ended grant at %s local:\n%s", wantTokyo, tokyo)
	}
	if !regexp.MustCompile(`\d\d:\d\dZ, replaced by admin`).MatchString(utc) {
		t.Errorf("grants --utc: want the ended grant at a UTC clock time:\n%s", utc)
	}
	if !strings.Contains(tokyo, "left") {
		t.Errorf("grants: the open grant should show the time left:\n%s", tokyo)
	}
}

// Completion offers the new names only: --allowed-source, get, and the
// values of --principal-type.
func TestCompletionOffersNewNames(t *testing.T) {
	complete := func(args ...string) string {
		var out, errb bytes.Buffer
		run(context.Background(), append([]string{"__complete"}, args...), &out, &errb, func(string) string { return "" })
		return out.String()
	}
	if got := complete("policy", "set", "web-01", "--"); !strings.Contains(got, "--allowed-source") || strings.Contains(got, "--source") {
		t.Errorf("policy set flags: %q", got)
	}
	if got := complete("network", ""); !strings.Contains(got, "get") || strings.Contains(got, "show") {
		t.Errorf("network subcommands: %q", got)
	}
	if got := complete("role", "assign", "--"); !strings.Contains(got, "--principal-type") || strings.Contains(got, "--group") {
		t.Errorf("role assign flags: %q", got)
	}
	if got := complete("role", "assign", "--principal-type", ""); !strings.Contains(got, "user") || !strings.Contains(got, "group") {
		t.Errorf("role assign --principal-type values: %q", got)
	}
}

// A mistyped subcommand is a usage error, not help and exit 0; a bare
// group still prints its help.
func TestUnknownSubcommandIsAUsageError(t *testing.T) {
	for _, args := range [][]string{{"vm", "lis"}, {"policy", "nosuch"}, {"audit", "lst"}, {"token", "crate"}} {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb, func(string) string { return "" })
		if code != exitUsage || !strings.Contains(errb.String(), "unknown command") {
			t.Errorf("drawbridge %v: exit %d, stderr %q; want exit %d, unknown command", args, code, errb.String(), exitUsage)
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"policy"}, &out, &errb, func(string) string { return "" }); code != 0 || !strings.Contains(out.String(), "Available Commands") {
		t.Errorf("drawbridge policy: exit %d, %q", code, out.String())
	}
	var o2, e2 bytes.Buffer
	if code := run(context.Background(), []string{"vm", "lst"}, &o2, &e2, func(string) string { return "" }); !strings.Contains(e2.String(), "did you mean list") {
		t.Errorf("drawbridge vm lst: exit %d, stderr %q; want a suggestion", code, e2.String())
	}
}
