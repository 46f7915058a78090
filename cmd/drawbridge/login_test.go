package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// login saves named contexts (mode 0600); --context and DRAWBRIDGE_CONTEXT
// pick one; a bad token is refused and not saved; logout forgets it.
func TestLoginContexts(t *testing.T) {
	u, carol, dave := scopedSetup(t)
	dir := t.TempDir()
	env := map[string]string{"XDG_CONFIG_HOME": dir}
	runEnv := func(args ...string) result {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb, func(k string) string { return env[k] })
		return result{out.String(), errb.String(), code}
	}
	if r := runEnv("login", "--server", u, "--token", "dbt_not-a-token", "--context", "bad"); r.code != exitAuth {
		t.Fatalf("login with a bad token: %+v", r)
	}
	if r := runEnv("login", "--server", u, "--token", carol, "--context", "carol"); r.code != 0 {
		t.Fatalf("login carol: %+v", r)
	}
	if r := runEnv("login", "--server", u, "--token", dave, "--context", "dave"); r.code != 0 {
		t.Fatalf("login dave: %+v", r)
	}
	path := filepath.Join(dir, "drawbridge", "config.json")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config %s: %v, mode %v; want 0600", path, err, fi.Mode())
	}
	if data, _ := os.ReadFile(path); strings.Contains(string(data), `"bad"`) {
		t.Fatalf("a refused login was saved:\n%s", data)
	}
	// Current context is dave (the last login): no flags, no environment.
	r := runEnv("request", "pending", "-o", "json")
	if r.code != 0 {
		t.Fatalf("as the current context: %+v", r)
	}
	// --context and DRAWBRIDGE_CONTEXT pick a saved login over the current one.
	if r := runEnv("--context", "carol", "vm", "list"); r.code != 0 || !strings.Contains(r.stdout, "web-01") {
		t.Fatalf("--context carol vm list: %+v", r)
	}
	env["DRAWBRIDGE_CONTEXT"] = "nobody"
	if r := runEnv("vm", "list"); r.code != exitUsage || !strings.Contains(r.stderr, "nobody") {
		t.Fatalf("unknown context: %+v", r)
	}
	env["DRAWBRIDGE_CONTEXT"] = "carol"
	if r := runEnv("logout"); r.code != 0 || !strings.Contains(r.stdout, "carol") {
		t.Fatalf("logout: %+v", r)
	}
	if r := runEnv("vm", "list"); r.code != exitUsage {
		t.Fatalf("after logout, context carol still works: %+v", r)
	}
	if tok, err := readToken(strings.NewReader("  dbt_pasted \n")); err != nil || tok != "dbt_pasted" {
		t.Fatalf("readToken: %q %v", tok, err)
	}
}
