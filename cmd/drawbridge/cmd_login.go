package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// cliConfig is the user's saved logins: named contexts, as kubectl keeps
// them, in $XDG_CONFIG_HOME/drawbridge/config.json (mode 0600).
type cliConfig struct {
	Current  string                `json:"currentContext,omitempty"`
	Contexts map[string]cliContext `json:"contexts"`
}

type cliContext struct {
	Server string `json:"server"`
	Token  string `json:"token"`
	oidcLogin
}

// configPath is $DRAWBRIDGE_CONFIG, else the user's config directory.
func (a *app) configPath() (string, error) {
	if p := a.getenv("DRAWBRIDGE_CONFIG"); p != "" {
		return p, nil
	}
	if d := a.getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "drawbridge", "config.json"), nil
	}
	if h := a.getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "drawbridge", "config.json"), nil
	}
	return "", errors.New("no config directory: set HOME, XDG_CONFIG_HOME or DRAWBRIDGE_CONFIG")
}

func (a *app) loadConfig() (cliConfig, string, error) {
	cfg := cliConfig{Contexts: map[string]cliContext{}}
	path, err := a.configPath()
	if err != nil {
		return cfg, "", err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cfg, path, nil
	}
	if err != nil {
		return cfg, path, err
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return cfg, path, fmt.Errorf("%s: %v", path, err)
	}
	if cfg.Contexts == nil {
		cfg.Contexts = map[string]cliContext{}
	}
	return cfg, path, nil
}

// saveConfig writes the config readable by its owner only: it holds tokens.
func saveConfig(path string, cfg cliConfig) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	// A temporary file of its own (CreateTemp: mode 0600), renamed over
	// the config: two commands refreshing at once never mix their writes.
	f, err := os.CreateTemp(filepath.Dir(path), ".config-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename: nothing to remove
	_, err = f.Write(append(data, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// contextName is --context, else $DRAWBRIDGE_CONTEXT ("" if neither).
func (a *app) contextName() string {
	if a.context != "" {
		return a.context
	}
	return a.getenv("DRAWBRIDGE_CONTEXT")
}

// savedContext is the context chosen explicitly, else the current one;
// explicit reports whether it was named (then it wins over the
// environment's server and token).
func (a *app) savedContext() (ctx cliContext, explicit bool, err error) {
	name := a.contextName()
	cfg, path, err := a.loadConfig()
	if err != nil {
		if name == "" {
			return cliContext{}, false, nil // no config is fine without --context
		}
		return cliContext{}, true, err
	}
	if name == "" {
		return cfg.Contexts[cfg.Current], false, nil
	}
	c, ok := cfg.Contexts[name]
	if !ok {
		return c, true, usageError(fmt.Errorf("--context: no context %q in %s (drawbridge login --context %s)", name, path, name))
	}
	return c, true, nil
}

func (a *app) loginCmd() *cobra.Command {
	var tokenStdin bool
	cmd := &cobra.Command{
		Use:   "login --server URL [--context NAME] [--token TOKEN | --token-stdin]",
		Short: "Sign in (OIDC device code, or a token read from stdin) and save it as a named context",
		Long: `Save a server URL and credential as a named context (default "default") in
$XDG_CONFIG_HOME/drawbridge/config.json (mode 0600) and make it current.
When the server has an OIDC issuer, sign in with the device code flow: open
the URL shown, enter the code; the ID token is refreshed before it expires.
Otherwise, or with --token-stdin, paste an API token on stdin (or pass
--token). The credential is checked against the server first. Choose a
context with --context or DRAWBRIDGE_CONTEXT.`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.server == "" {
				return usageError(errors.New("--server: the server URL is required"))
			}
			if a.token == "" && !tokenStdin {
				if done, err := a.oidcLogin(cmd.Context()); done || err != nil {
					return err // login_oidc.go
				}
			}
			if a.token == "" {
				tok, err := readToken(cmd.InOrStdin())
				if err != nil {
					return err
				}
				a.token = tok
			}
			name := a.contextName()
			if name == "" {
				name = "default"
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if _, err := c.VMs(cmd.Context()); err != nil {
				return fmt.Errorf("checking the token: %w", err)
			}
			cfg, path, err := a.loadConfig()
			if err != nil {
				return err
			}
			cfg.Contexts[name] = cliContext{Server: a.server, Token: a.token}
			cfg.Current = name
			if err := saveConfig(path, cfg); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "logged in to %s as context %q (%s)\n", safeText(a.server), safeText(name), safeText(path))
			return nil
		},
	}
	cmd.Flags().BoolVar(&tokenStdin, "token-stdin", false, "read an API token from stdin even when the server has an OIDC issuer (scripts)")
	return cmd
}

func readToken(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if tok := strings.TrimSpace(line); tok != "" {
		return tok, nil
	}
	return "", usageError(errors.New("--token: no token given (pass --token or paste it on stdin)"))
}

func (a *app) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout [--context NAME]",
		Short: "Forget a saved context (default: the current one)",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, path, err := a.loadConfig()
			if err != nil {
				return err
			}
			name := a.contextName()
			if name == "" {
				name = cfg.Current
			}
			if _, ok := cfg.Contexts[name]; !ok {
				return exitError{code: exitNotFound, err: fmt.Errorf("no context %q to log out of", name)}
			}
			delete(cfg.Contexts, name)
			if cfg.Current == name {
				cfg.Current = ""
			}
			if err := saveConfig(path, cfg); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "logged out of context %q\n", safeText(name))
			return nil
		},
	}
}
