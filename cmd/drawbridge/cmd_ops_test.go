package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/config"
)

var updateREADME = flag.Bool("update-readme", false, "rewrite README.md's configuration table from the flag definitions")

// lockedBuffer collects a running command's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServerConfigPrecedence starts `drawbridge server` configured from a
// flag, the environment and a YAML file: the flag beats the file
// (--sample-inventory=false), the environment beats the file (log format),
// the file beats the default (listen, insecure mode), the database comes
// from the environment only.
func TestServerConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "drawbridge.yaml")
	yaml := "listen: 127.0.0.1:0\nsample-inventory: true\ninsecure-no-auth: true\nlog-format: text\nshutdown-timeout: 3s\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DRAWBRIDGE_DB": filepath.Join(dir, "env.db"), "DRAWBRIDGE_LOG_FORMAT": "json", "DRAWBRIDGE_CONFIG": file}
	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"server", "--sample-inventory=false"}, &stdout, &stderr, func(k string) string { return env[k] })
	}()
	var url string
	for deadline := time.Now().Add(20 * time.Second); url == ""; time.Sleep(20 * time.Millisecond) {
		if f := strings.Fields(stdout.String()); len(f) > 0 && strings.HasPrefix(f[len(f)-1], "http://") {
			url = f[len(f)-1]
		}
		select {
		case code := <-done:
			t.Fatalf("server exited %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start: %s", stderr.String())
		}
	}
	resp, err := http.Get(url + "/drawbridge/v1/vms") // no token: insecure mode came from the file
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(body), "web-01") {
		t.Fatalf("vms: %d %s; want 200 and no sample inventory (the flag beats the file)", resp.StatusCode, body)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if _, err := os.Stat(env["DRAWBRIDGE_DB"]); err != nil {
		t.Fatalf("database from DRAWBRIDGE_DB not created: %v", err)
	}
	if !strings.Contains(stderr.String(), `{"time":`) || !strings.Contains(stderr.String(), `"msg":"server started"`) {
		t.Fatalf("log is not JSON (the environment beats the file): %s", stderr.String())
	}
}

func TestConfigFileErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(file, []byte("lisen: 127.0.0.1:0\n"), 0o600)
	r := cli(t, "http://127.0.0.1:1", "server", "--config", file)
	if r.code == 0 || !strings.Contains(r.stderr, "unknown setting lisen") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	r = cli(t, "http://127.0.0.1:1", "agent", "--config", file)
	if r.code == 0 || !strings.Contains(r.stderr, "unknown setting lisen") {
		t.Fatalf("agent: exit %d, stderr %q", r.code, r.stderr)
	}
	r = cli(t, "http://127.0.0.1:1", "server", "--log-format", "xml", "--db", filepath.Join(t.TempDir(), "x.db"))
	if r.code == 0 || !strings.Contains(r.stderr, "--log-format") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestVersion(t *testing.T) {
	out := ok(t, "http://127.0.0.1:1", "version")
	if !strings.HasPrefix(out, "drawbridge ") || !strings.Contains(out, runtime.Version()) || !strings.Contains(out, "revision ") {
		t.Fatalf("version: %q", out)
	}
}

const tableBegin, tableEnd = "<!-- config-table:begin (go test ./cmd/drawbridge -run TestREADMEConfigTable -update-readme) -->", "<!-- config-table:end -->"

// configTable renders the README's configuration section from the flags.
func configTable() string {
	a := &app{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	root := a.rootCmd()
	var b strings.Builder
	for _, name := range []string{"server", "agent"} {
		cmd, _, err := root.Find([]string{name})
		if err != nil {
			panic(err)
		}
		var inherited []string
		for k := range cmd.Annotations {
			if n, ok := strings.CutPrefix(k, "config-inherited:"); ok {
				inherited = append(inherited, n)
			}
		}
		fmt.Fprintf(&b, "\n`drawbridge %s`:\n\n%s", name, config.Table(configFlags(cmd, inherited...)))
	}
	return b.String()
}

// TestREADMEConfigTable: the README's table is the flags' own. After
// adding or changing a flag, regenerate it with
// go test ./cmd/drawbridge -run TestREADMEConfigTable -update-readme
func TestREADMEConfigTable(t *testing.T) {
	const path = "../../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, tableBegin), strings.Index(readme, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q … %q markers", tableBegin, tableEnd)
	}
	want := configTable() + "\n"
	got := readme[i+len(tableBegin) : j]
	if got == want {
		return
	}
	if *updateREADME {
		if err := os.WriteFile(path, []byte(readme[:i+len(tableBegin)]+want+readme[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("README.md's configuration table is out of date; regenerate it with\n  go test ./cmd/drawbridge -run TestREADMEConfigTable -update-readme\nwant:\n%s", want)
}

func TestCommandLineOnlyFlags(t *testing.T) {
	a := &app{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" }}
	cmd, _, _ := a.rootCmd().Find([]string{"server"})
	cmd.Flags().Bool("one-shot", false, "an action")
	commandLineOnly(cmd.Flags(), "one-shot")
	for _, f := range configFlags(cmd) {
		if f.Name == "one-shot" {
			t.Fatal("a command-line-only flag is configurable")
		}
	}
}
