package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

// Names that changed so that one word means one thing everywhere (issue 17):
// reading commands are "get" (the older "show" is a hidden alias), and flags
// renamed for clarity keep their old name as a hidden alias that warns on
// stderr, so old scripts keep working.

// getVerb makes cmd a "get" command answering to "show" as well.
func getVerb(cmd *cobra.Command) *cobra.Command {
	cmd.Aliases = append(cmd.Aliases, "show")
	return cmd
}

// oldFlag marks name as a hidden, renamed flag of cmd.
func oldFlag(cmd *cobra.Command, name string) {
	if err := cmd.Flags().MarkHidden(name); err != nil {
		panic(err) // a programming error: the flag is defined beside this call
	}
}

// warnOldFlag prints a warning on stderr when the renamed flag old was
// given, and reports whether it was.
func (a *app) warnOldFlag(cmd *cobra.Command, old, instead string) bool {
	if !cmd.Flags().Changed(old) {
		return false
	}
	fmt.Fprintf(a.stderr, "drawbridge: warning: %s --%s is deprecated; use %s\n", cmd.CommandPath(), old, instead)
	return true
}

// durationValue is a time.Duration flag that takes ISO 8601 (PT3H, P1D)
// as well as Go syntax (3h, 90s), as every duration the CLI and API take.
// Its type and default print as pflag's own duration flag's do.
type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	v, err := jit.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

func (d *durationValue) String() string { return time.Duration(*d).String() }
func (d *durationValue) Type() string   { return "duration" }

// durationFlag defines a duration flag taking either form.
func durationFlag(f *pflag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	f.Var((*durationValue)(p), name, usage)
}

// principalType parses role assign's --principal-type.
func principalType(s string) (rbac.PrincipalType, error) {
	switch strings.ToLower(s) {
	case "user":
		return rbac.PrincipalUser, nil
	case "group":
		return rbac.PrincipalGroup, nil
	}
	return "", usageError(fmt.Errorf("--principal-type: %q is not user or group", s))
}

// location is where table times are shown: UTC with --utc, else the
// zone TZ names (read through getenv, so tests can set it), else the
// process's local zone.
func (a *app) location() *time.Location {
	if a.utc {
		return time.UTC
	}
	if tz := strings.TrimPrefix(a.getenv("TZ"), ":"); tz != "" {
		if loc, err := time.LoadLocation(tz); err == nil {
			return loc
		}
	}
	return time.Local
}

// now is the current time in a.location(), which the table printers
// format their times in.
func (a *app) now() time.Time { return time.Now().In(a.location()) }

// rejectUnknownSubcommands makes a command group (policy, vm, …) given an
// unknown subcommand fail as a usage error (exit 2) instead of printing its
// help and exiting 0, which let a mistyped command in a script pass.
func rejectUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		rejectUnknownSubcommands(sub)
	}
	if !c.HasSubCommands() || c.Run != nil || c.RunE != nil || !c.HasParent() {
		return
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if cmd.SuggestionsMinimumDistance <= 0 {
			cmd.SuggestionsMinimumDistance = 2 // cobra's default, set only on its own path
		}
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return usageError(errors.New(msg))
	}
}
