package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/testbin"
)

// The built binary: `drawbridge login --server URL` runs the device flow
// against the server's issuer and saves the sign-in (0600) that the next
// command uses; --token-stdin reads a token from stdin even so; a server
// without an issuer gets the pasted token. Nothing secret is printed.
func TestOIDCLoginBinary(t *testing.T) {
	w := newOIDCWorld(t)
	plain := startServer(t) // no issuer
	bin := testbin.Drawbridge(t)
	home := t.TempDir()
	var outputs []string
	run := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		c := exec.Command(bin, args...)
		c.Env = []string{"HOME=" + home}
		c.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		err := c.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, out.String(), errb.String())
		return out.String(), errb.String(), code
	}
	out, errs, code := run("", "login", "--server", w.url)
	if code != 0 || !strings.Contains(errs, "enter the code WDJB-MJHT") || !strings.Contains(out, `as context "default"`) {
		t.Fatalf("device login: exit %d\nstdout %s\nstderr %s", code, out, errs)
	}
	if out, errs, code := run("", "vm", "list"); code != 0 || !strings.Contains(out, "web-01") {
		t.Fatalf("vm list after login: exit %d %s %s", code, out, errs)
	}
	if _, errs, code := run(tokenFor(w.url)+"\n", "login", "--server", w.url, "--token-stdin", "--context", "admin"); code != 0 {
		t.Fatalf("--token-stdin: exit %d %s", code, errs)
	}
	if _, errs, code := run(tokenFor(plain.URL)+"\n", "login", "--server", plain.URL, "--context", "plain"); code != 0 || strings.Contains(errs, "enter the code") {
		t.Fatalf("paste a token (no issuer): exit %d %s", code, errs)
	}
	if n := len(w.dev.Polls()); n != 1 {
		t.Fatalf("%d device polls; want 1 (the token logins must not start the device flow)", n)
	}
	path := filepath.Join(home, ".config", "drawbridge", "config.json")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v; want mode 0600", path, err, fi)
	}
	data, _ := os.ReadFile(path)
	var secrets []string
	for _, k := range []string{`"token": "`, `"refreshToken": "`} {
		for _, part := range strings.Split(string(data), k)[1:] {
			secrets = append(secrets, part[:strings.IndexByte(part, '"')])
		}
	}
	if len(secrets) != 4 { // three tokens, one refresh token
		t.Fatalf("config holds %d secrets:\n%s", len(secrets), data)
	}
	for _, o := range outputs {
		for _, s := range secrets {
			if strings.Contains(o, s) {
				t.Fatalf("a secret was printed:\n%s", o)
			}
		}
	}
}
