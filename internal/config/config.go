// Package config fills command-line flags from the environment and a YAML
// file, the way other Go servers are configured: for every flag,
//
//	--some-flag  >  DRAWBRIDGE_SOME_FLAG  >  some-flag: in the --config file  >  default
//
// It works on whatever flags a command defines, so a flag added later is
// covered without touching this package, and it renders the Markdown table
// that documents them (the README's table is checked against it).
package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// EnvPrefix starts every variable name.
const EnvPrefix = "DRAWBRIDGE_"

// EnvName is the variable of a flag: --max-backoff → DRAWBRIDGE_MAX_BACKOFF.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// ReadFile reads a YAML mapping of flag names to values. Lists are
// allowed for flags that take several values.
func ReadFile(path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	return m, nil
}

// Apply sets each flag of flags that was not given on the command line
// from its environment variable, else from file (nil: no file). An unknown
// key in file, or a value a flag rejects, is an error naming the flag and
// where the value came from. Values are never echoed: they may be secrets.
func Apply(flags []*pflag.Flag, getenv func(string) string, file map[string]any) error {
	known := map[string]bool{}
	for _, f := range flags {
		known[f.Name] = true
	}
	var unknown []string
	for k := range file {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("--config: unknown setting %s (settings are flag names without the dashes)", strings.Join(unknown, ", "))
	}
	for _, f := range flags {
		if f.Changed {
			continue
		}
		env := EnvName(f.Name)
		if v := getenv(env); v != "" {
			if err := setString(f, v, true); err != nil {
				return fmt.Errorf("%s (for --%s): %w", env, f.Name, err)
			}
			f.Changed = true
			continue
		}
		if v, ok := file[f.Name]; ok {
			if err := setAny(f, v); err != nil {
				return fmt.Errorf("--config setting %s: %w", f.Name, err)
			}
			f.Changed = true
		}
	}
	return nil
}

// setString sets f from one string; for a list flag, split says whether
// commas separate values (an environment variable holds a whole list).
func setString(f *pflag.Flag, v string, split bool) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok && split {
		parts := strings.Split(v, ",")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		return sv.Replace(parts)
	}
	if err := f.Value.Set(v); err != nil {
		return errors.New("invalid value for a " + f.Value.Type() + " flag")
	}
	return nil
}

func setAny(f *pflag.Flag, v any) error {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		sv, ok := f.Value.(pflag.SliceValue)
		if !ok {
			return fmt.Errorf("a list, but --%s takes one value", f.Name)
		}
		parts := make([]string, len(x))
		for i, e := range x {
			s, err := scalar(e)
			if err != nil {
				return err
			}
			parts[i] = s
		}
		return sv.Replace(parts)
	case map[string]any:
		return fmt.Errorf("a mapping, but --%s takes a value", f.Name)
	}
	s, err := scalar(v)
	if err != nil {
		return err
	}
	return setString(f, s, false)
}

// scalar renders a YAML scalar as the flag's text (YAML numbers arrive as
// float64 through JSON: 8080 → "8080").
func scalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return fmt.Sprint(x), nil
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprint(int64(x)), nil
		}
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("unsupported value of type %T", v)
}

// Table renders flags as a Markdown table: flag, variable, default, meaning.
func Table(flags []*pflag.Flag) string {
	var b strings.Builder
	b.WriteString("| Flag | Environment | Default | Meaning |\n|---|---|---|---|\n")
	for _, f := range flags {
		def := f.DefValue
		if def == "" || def == "[]" {
			def = ""
		} else {
			def = "`" + def + "`"
		}
		usage := strings.ReplaceAll(f.Usage, "|", `\|`)
		fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s |\n", f.Name, EnvName(f.Name), def, usage)
	}
	return b.String()
}
