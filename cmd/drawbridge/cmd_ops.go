//go:build !drawbridge_client

package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drawbridge/drawbridge/internal/config"
)

// configurable gives cmd a --config FILE flag and fills, before it runs,
// every flag of cmd not set on the command line from DRAWBRIDGE_<FLAG>,
// else from the file (precedence flag > environment > file > default).
// inherited names the root's flags the command also reads (the agent's
// --server and --token). It returns the flags it covers, for the table.
func (a *app) configurable(cmd *cobra.Command, inherited ...string) {
	var path string
	cmd.Flags().StringVar(&path, "config", "", "YAML file of settings named like the flags (e.g. listen: 0.0.0.0:8080); default $"+config.EnvName("config"))
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if path == "" {
			path = a.getenv(config.EnvName("config"))
		}
		var file map[string]any
		if path != "" {
			var err error
			if file, err = config.ReadFile(path); err != nil {
				return err
			}
		}
		return config.Apply(configFlags(cmd, inherited...), a.getenv, file)
	}
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	for _, n := range inherited {
		cmd.Annotations["config-inherited:"+n] = "true"
	}
}

const noConfigKey = "drawbridge/no-config"

// commandLineOnly marks flags that name an action of one run (--restore,
// --status) rather than a setting: they are taken from the command line
// only, never from the environment or the --config file.
func commandLineOnly(fs *pflag.FlagSet, names ...string) {
	for _, n := range names {
		if err := fs.SetAnnotation(n, noConfigKey, []string{"true"}); err != nil {
			panic(err) // a flag name typo: a programming error
		}
	}
}

// configFlags are the flags configurable covers: cmd's own (not --config
// or --help) and the named inherited ones, in name order.
func configFlags(cmd *cobra.Command, inherited ...string) []*pflag.Flag {
	var out []*pflag.Flag
	want := map[string]bool{}
	for _, n := range inherited {
		want[n] = true
	}
	cmd.InheritedFlags() // merges the root's persistent flags into cmd.Flags()
	local := cmd.LocalNonPersistentFlags()
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" || f.Name == "help" || f.Annotations[noConfigKey] != nil {
			return
		}
		if local.Lookup(f.Name) != nil || want[f.Name] {
			out = append(out, f)
		}
	})
	return out
}

// newLogger builds the slog logger of --log-format and --debug.
func newLogger(w io.Writer, format string, debug bool) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if debug {
		opts.Level = slog.LevelDebug
	}
	switch format {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not a format; use text or json", format)
}
