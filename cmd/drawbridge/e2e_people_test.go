package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/testbin"
)

// person runs the drawbridge binary as one user: DRAWBRIDGE_SERVER and
// DRAWBRIDGE_TOKEN in the environment, nothing else from the tester's.
type person struct {
	t            *testing.T
	bin, url, tk string
}

func (p person) cmd(args ...string) *exec.Cmd {
	c := exec.Command(p.bin, args...)
	c.Env = []string{"DRAWBRIDGE_SERVER=" + p.url, "DRAWBRIDGE_TOKEN=" + p.tk, "HOME=" + p.t.TempDir()}
	return c
}

// run returns stdout, stderr and the exit code.
func (p person) run(args ...string) (string, string, int) {
	p.t.Helper()
	c := p.cmd(args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		p.t.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

func (p person) ok(args ...string) string {
	p.t.Helper()
	out, errs, code := p.run(args...)
	if code != 0 {
		p.t.Fatalf("drawbridge %s: exit %d, stderr %q", strings.Join(args, " "), code, errs)
	}
	return out
}

// waiter starts `request status ID --wait -o json` and returns a function
// that waits for it and returns the status and exit code.
func (p person) waiter(id string) func() (requestStatus, int) {
	p.t.Helper()
	c := p.cmd("request", "status", id, "--wait", "-o", "json")
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Start(); err != nil {
		p.t.Fatal(err)
	}
	return func() (requestStatus, int) {
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		var err error
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			c.Process.Kill()
			p.t.Fatalf("request status --wait did not return; stderr %q", errb.String())
		}
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		// Silent with -o json: no progress line; only a failure's one line.
		if code == 0 && errb.Len() != 0 || code != 0 && strings.Count(errb.String(), "\n") != 1 {
			p.t.Errorf("--wait -o json (exit %d) wrote to stderr: %q", code, errb.String())
		}
		var st requestStatus
		if err := json.Unmarshal(out.Bytes(), &st); err != nil {
			p.t.Fatalf("--wait output %q: %v", out.String(), err)
		}
		return st, code
	}
}

var requestIDLine = regexp.MustCompile(`(?m)^request (\S+)$`)

// TestCarolAndDaveEndToEnd plays the two people through the CLI
// binary: carol, a JIT requester at one resource group, and dave, an
// approver by group at the subscription. No full resource ID is typed.
func TestCarolAndDaveEndToEnd(t *testing.T) {
	bin := testbin.Drawbridge(t)
	u, carolTok, daveTok := scopedSetup(t)
	carol, dave := person{t, bin, u, carolTok}, person{t, bin, u, daveTok}

	if out := carol.ok("vm", "list"); !strings.Contains(out, "web-01") || strings.Contains(out, "bastion") {
		t.Fatalf("carol vm list:\n%s", out)
	}
	out := carol.ok("request", "web-01", "--port", "22", "--duration", "1h", "--source", "198.18.7.7", "--justification", "fix nginx")
	m := requestIDLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("request printed no request ID:\n%s", out)
	}
	id := m[1]
	if out := carol.ok("request", "status", id); !strings.Contains(out, "AwaitingApproval") {
		t.Fatalf("status while pending:\n%s", out)
	}
	wait := carol.waiter(id)
	if out := dave.ok("request", "pending"); !strings.Contains(out, id) || !strings.Contains(out, "carol") {
		t.Fatalf("dave's pending list:\n%s", out)
	}
	if out := dave.ok("request", "approve", id, "--reason", "ticket 42"); !strings.Contains(out, "approved and opened") {
		t.Fatalf("dave approve:\n%s", out)
	}
	st, code := wait()
	if code != 0 || st.State != stateOpen || len(st.Grants) != 1 || st.Approval == nil ||
		st.Approval.Approvals[0].Principal != "dave" || st.Approval.Approvals[0].Reason != "ticket 42" {
		t.Fatalf("--wait after approval: exit %d, %+v", code, st)
	}
	grant := st.Grants[0].ID
	out = carol.ok("grants")
	for _, want := range []string{grant, "web-01", "carol", "198.18.7.7", "open", "left"} {
		if !strings.Contains(out, want) {
			t.Fatalf("carol's grants table lacks %q:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if len(l) > 100 {
			t.Errorf("grants line wider than 100 columns: %q", l)
		}
	}
	if out := carol.ok("revoke", grant); !strings.Contains(out, "ended") || !strings.Contains(out, "revoked") {
		t.Fatalf("carol revoke:\n%s", out)
	}
	if out := carol.ok("request", "status", id); !strings.Contains(out, "Ended") {
		t.Fatalf("status after revoke:\n%s", out)
	}

	// A denied request: --wait exits 8 and says so.
	out = carol.ok("request", "web-01", "--port", "22", "--duration", "30m", "--source", "198.18.7.7", "--justification", "again")
	id2 := requestIDLine.FindStringSubmatch(out)[1]
	wait = carol.waiter(id2)
	dave.ok("request", "deny", id2, "--reason", "not today")
	if st, code := wait(); code != exitRefused || st.State != stateDenied {
		t.Fatalf("--wait on a denied request: exit %d, %+v", code, st)
	}
	// Errors have their own exit codes.
	if _, _, code := carol.run("request", "status", "no-such-request"); code != exitNotFound {
		t.Errorf("status of an unknown request: exit %d, want %d", code, exitNotFound)
	}
	if _, _, code := carol.run("token", "list"); code != exitPermission {
		t.Errorf("carol token list: exit %d, want %d", code, exitPermission)
	}
	if _, _, code := carol.run("request", "web-01", "--bogus"); code != exitUsage {
		t.Errorf("unknown flag: exit %d, want %d", code, exitUsage)
	}
}
