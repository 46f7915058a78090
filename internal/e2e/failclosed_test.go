package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	nft "github.com/google/nftables"

	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/netns"
	"github.com/drawbridge/drawbridge/internal/provider/nftables"
	"github.com/drawbridge/drawbridge/internal/testbin"
)

// guarded reports whether the VM's table denies 22 and 3389 again (the
// policy's ports are TCP: 2 entries) with all 12 of its rules in place.
func (k *kernel) guarded() bool {
	st, err := k.k.Observe(context.Background())
	if err != nil || len(st.Guarded) != 2 {
		return false
	}
	c, err := nft.New(nft.WithNetNSFd(int(k.f.Fd())))
	if err != nil {
		return false
	}
	defer c.CloseLasting()
	t := &nft.Table{Name: nftables.TableName, Family: nft.TableFamilyINet}
	rules, err := c.GetRules(t, &nft.Chain{Name: nftables.ChainName, Table: t})
	return err == nil && len(rules) == 12
}

// grantEnd is the end of the kernel's grant for src on 22 (zero if none).
func (k *kernel) grantEnd(src string) time.Time {
	st, err := k.k.Observe(context.Background())
	if err != nil {
		return time.Time{}
	}
	for _, g := range st.Grants {
		if g.Port == 22 && g.Source.String() == src+"/32" {
			return g.End
		}
	}
	return time.Time{}
}

// nftIn runs nft in ns (as a separate process, so the agent sees a foreign
// change) and returns when it has committed.
func nftIn(t testing.TB, ns *netns.NS, args ...string) {
	t.Helper()
	if out, err := ns.Exec("nft", args...); err != nil {
		t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// restoredWithin waits up to 1s for the guard to be back and returns how
// long it took.
func restoredWithin(t *testing.T, what string, k *kernel, began time.Time) time.Duration {
	t.Helper()
	if !waitFor(time.Second, k.guarded) {
		t.Fatalf("%s: the guard is not back within 1s", what)
	}
	return time.Since(began)
}

func requireNft(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/nft"); err != nil {
		if _, err := os.Stat("/sbin/nft"); err != nil {
			t.Skip("skipping: the nft binary (Debian package nftables, installed by .ci/run) makes the foreign changes")
		}
	}
}

// TestAgentRepairsDrift: deleting the table, `nft flush ruleset` and the
// equivalent of `systemctl restart nftables` (nft -f a file that starts
// with flush ruleset) each leave the guarded ports closed again within 1s,
// the active grant restored with its remaining time, and a drift record in
// the audit log.
func TestAgentRepairsDrift(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: -short (builds the binary, runs real processes)")
	}
	requireHost(t)
	requireNft(t)
	dir := t.TempDir()
	tp := newTopo(t)
	kern := openKernel(t, tp.vm)
	_, url := startServer(t, dir, "server")
	c := setUp(t, dir, url, tp)
	ag := startAgent(t, dir, "agent", url, tp.vm)
	if !waitFor(5*time.Second, kern.guarded) {
		t.Fatal("the agent did not guard 22 and 3389 within 5s")
	}
	g := request(t, c, tp.a4, "PT2M")
	waitOpen(t, "A's grant", tp.a, tp.vmA4)

	conf := filepath.Join(dir, "nftables.conf")
	if err := os.WriteFile(conf, []byte("#!/usr/sbin/nft -f\nflush ruleset\n\ntable inet filter {\n\tchain input {\n\t\ttype filter hook input priority filter;\n\t}\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"nft delete table inet drawbridge", []string{"delete", "table", "inet", "drawbridge"}},
		{"nft flush ruleset", []string{"flush", "ruleset"}},
		{"nft -f nftables.conf (systemctl restart nftables)", []string{"-f", conf}},
		{"nft delete rule (the guard rule)", nil},
	} {
		args := tc.args
		if args == nil {
			out, err := tp.vm.Exec("nft", "-a", "list", "chain", "inet", "drawbridge", "input")
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, "@guard_tcp drop") {
					args = []string{"delete", "rule", "inet", "drawbridge", "input", "handle", l[strings.LastIndex(l, " ")+1:]}
				}
			}
			if args == nil {
				t.Fatalf("no guard rule in\n%s", out)
			}
		}
		began := time.Now()
		nftIn(t, tp.vm, args...)
		took := restoredWithin(t, tc.name, kern, began)
		t.Logf("%s: guard back %v after the command started", tc.name, took)
		assertClosed(t, tc.name, tp.b, tp.vmB4, 22)
		assertClosed(t, tc.name, tp.b, tp.vmB4, 3389)
		assertOpen(t, tc.name+": A's grant restored", tp.a, tp.vmA4, 22)
		if end := kern.grantEnd(tp.a4.String()); end.Sub(g.EndTimeUtc).Abs() > time.Second {
			t.Fatalf("%s: the restored grant ends at %v, want %v (its remaining time)", tc.name, end, g.EndTimeUtc)
		}
	}
	// Only foreign changes count as drift: the agent's own transactions never do.
	if strings.Contains(ag.logText(), "by drawbridge[") {
		t.Fatalf("the agent took its own transaction for drift:\n%s", ag.logText())
	}
	// Four repairs, each audited as a drift record naming what was found.
	var recs int
	if !waitFor(3*time.Second, func() bool {
		rs, err := c.Audit(context.Background(), client.AuditFilter{VM: vmID})
		if err != nil {
			return false
		}
		recs = 0
		for _, r := range rs {
			if r.Operation == "drift" && strings.Contains(r.Detail, "by nft[") {
				recs++
			}
		}
		return recs >= 4
	}) {
		t.Fatalf("%d drift audit records, want 4", recs)
	}
}

// TestAgentBootFailsClosed: agent killed, table deleted, server stopped
// (the state of a host after a reboot with the server away): the agent's
// start closes the guarded ports within 1s; the state file's unexpired grant
// reopens; when the server returns it is authoritative again.
func TestAgentBootFailsClosed(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: -short (builds the binary, runs real processes)")
	}
	requireHost(t)
	requireNft(t)
	dir := t.TempDir()
	tp := newTopo(t)
	kern := openKernel(t, tp.vm)
	srv, url := startServer(t, dir, "server1")
	c := setUp(t, dir, url, tp)
	ag := startAgent(t, dir, "agent1", url, tp.vm)
	if !waitFor(5*time.Second, kern.guarded) {
		t.Fatal("the agent did not guard 22 and 3389 within 5s")
	}
	g := request(t, c, tp.a4, "PT2M")
	waitOpen(t, "A's grant", tp.a, tp.vmA4)
	if !waitFor(3*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "agent-state.json"))
		return strings.Contains(string(b), g.GrantID)
	}) {
		t.Fatal("the state file does not hold the grant")
	}

	ag.kill()
	nftIn(t, tp.vm, "delete", "table", "inet", "drawbridge")
	srv.kill()
	assertOpen(t, "no table, no agent: the failure mode", tp.b, tp.vmB4, 22)

	began := time.Now()
	ag = startAgent(t, dir, "agent2", url, tp.vm)
	if !waitFor(time.Second, kern.guarded) {
		t.Fatalf("the guard is not in place 1s after the agent started:\n%s", ag.logText())
	}
	t.Logf("boot to guarded: %v after starting the agent process", time.Since(began))
	assertClosed(t, "agent started, server down", tp.b, tp.vmB4, 22)
	assertOpen(t, "agent started, server down: the state file's grant", tp.a, tp.vmA4, 22)

	_, url = startServerOn(t, dir, "server2", strings.TrimPrefix(url, "http://"))
	c, err := client.New(url, "")
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool { return grantOf(t, c, g.GrantID).Applied }) {
		t.Fatalf("the grant does not show applied after the server returned:\n%s", ag.logText())
	}
	assertOpen(t, "server back", tp.a, tp.vmA4, 22)
	cli(t, url, "revoke", g.GrantID)
	if _, err := firstRefusal(tp.a, tp.vmA4, 22, 50*time.Millisecond, time.Now().Add(2*time.Second)); err != nil {
		t.Fatalf("revoke after the server returned: %v", err)
	}
}

// TestAgentStaleStateFile: a state file older than the server's state
// (it holds a grant revoked since) never reopens that grant while the
// server is reachable.
func TestAgentStaleStateFile(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: -short (builds the binary, runs real processes)")
	}
	requireHost(t)
	requireNft(t)
	dir := t.TempDir()
	tp := newTopo(t)
	kern := openKernel(t, tp.vm)
	_, url := startServer(t, dir, "server")
	c := setUp(t, dir, url, tp)
	ag := startAgent(t, dir, "agent1", url, tp.vm)
	g := request(t, c, tp.a4, "PT2M")
	waitOpen(t, "A's grant", tp.a, tp.vmA4)
	path := filepath.Join(dir, "agent-state.json")
	var stale []byte
	if !waitFor(3*time.Second, func() bool {
		stale, _ = os.ReadFile(path)
		return strings.Contains(string(stale), g.GrantID)
	}) {
		t.Fatal("the state file does not hold the grant")
	}
	ag.kill()
	cli(t, url, "revoke", g.GrantID) // the server closes it while the agent is away
	nftIn(t, tp.vm, "delete", "table", "inet", "drawbridge")
	if err := os.WriteFile(path, stale, 0o600); err != nil {
		t.Fatal(err)
	}
	ag = startAgent(t, dir, "agent2", url, tp.vm)
	if !waitFor(time.Second, kern.guarded) {
		t.Fatalf("the guard is not in place 1s after the agent started:\n%s", ag.logText())
	}
	// Probe for longer than the offline grace: A never gets in.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if connects(tp.a, tp.vmA4, 22, 100*time.Millisecond) {
			t.Fatalf("the stale state file reopened the revoked grant:\n%s", ag.logText())
		}
	}
	if !waitFor(2*time.Second, func() bool {
		return strings.Contains(ag.logText(), "target=\"server snapshot")
	}) {
		t.Fatalf("the agent never applied the server's snapshot:\n%s", ag.logText())
	}
}

// TestAgentRestoreCommand: `drawbridge agent --restore` (what the systemd
// units run at boot and after nftables.service reloads) puts the state
// file's guard and unexpired grant into the kernel without a server, and
// exits non-zero when there is nothing to restore.
func TestAgentRestoreCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: -short (builds the binary, runs real processes)")
	}
	requireHost(t)
	dir := t.TempDir()
	tp := newTopo(t)
	kern := openKernel(t, tp.vm)
	end := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	state := `{"format":1,"snapshot":{"type":"snapshot","vm":"` + vmID + `","version":3,
	  "guarded":[{"port":22,"protocol":"Tcp"},{"port":3389,"protocol":"Tcp"}],
	  "grants":[{"id":"g1","port":22,"protocol":"Tcp","source":"` + tp.a4.String() + `/32","end":"` + end.Format(time.RFC3339) + `"},
	            {"id":"g0","port":22,"protocol":"Tcp","source":"` + tp.b4.String() + `/32","end":"2020-01-01T00:00:00Z"}]}}`
	path := filepath.Join(dir, "state.json")
	if err := os.WriteFile(path, []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) error {
		cmd := exec.Command(testbin.Drawbridge(t), append([]string{"agent", "--restore", "--netns", tp.vm.Path()}, args...)...)
		out, err := cmd.CombinedOutput()
		t.Logf("agent --restore %v: %v\n%s", args, err, out)
		return err
	}
	if err := run("--state-file", filepath.Join(dir, "missing.json")); err == nil {
		t.Fatal("--restore with no state file and no --guard-ports succeeded")
	}
	if err := run("--state-file", path, "--vm", vmID); err != nil {
		t.Fatal(err)
	}
	if !kern.guarded() {
		t.Fatal("--restore did not put the guard back")
	}
	if e := kern.grantEnd(tp.a4.String()); e.Sub(end).Abs() > time.Second {
		t.Fatalf("restored grant ends %v, want %v", e, end)
	}
	assertOpen(t, "restored grant", tp.a, tp.vmA4, 22)
	assertClosed(t, "ended grant not restored", tp.b, tp.vmB4, 22)
}
