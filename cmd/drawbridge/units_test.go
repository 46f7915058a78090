package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemdUnits runs systemd-analyze verify on every unit in
// contrib/systemd (with ExecStart pointed at an existing binary, since
// verify checks it) and fails on any diagnostic: verify exits 0 for
// unknown keys and bad values, which it only prints.
func TestSystemdUnits(t *testing.T) {
	units, err := filepath.Glob("../../contrib/systemd/*.service")
	if err != nil || len(units) == 0 {
		t.Fatalf("no units: %v", err)
	}
	server, err := os.ReadFile("../../contrib/systemd/drawbridge-server.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"DynamicUser=yes", "StateDirectory=drawbridge", "ProtectSystem=strict", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n"} {
		if !strings.Contains(string(server), want) {
			t.Errorf("the server unit lacks %q", strings.TrimSpace(want))
		}
	}
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (apt-get install systemd); the units are not verified")
	}
	dir := t.TempDir()
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.Base(u))
		if err := os.WriteFile(dst, []byte(strings.ReplaceAll(string(b), "/usr/local/bin/drawbridge", "/bin/true")), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(tool, "verify", "--man=no", dst).CombinedOutput()
		if err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", filepath.Base(u), err, out)
		}
	}
}
