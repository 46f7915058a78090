package nftables

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/netns"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// TestWatchReportsForeignChanges: our own Apply is not reported; `nft`
// deleting the table, flushing the ruleset or deleting one of our rules is,
// and a change to another table is not.
func TestWatchReportsForeignChanges(t *testing.T) {
	requireKernel(t)
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skipf("skipping: the nft binary (package nftables) is needed to make foreign changes: %v", err)
	}
	ns, err := netns.New("dbwatch")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	f, err := ns.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	k := NewKernel(Options{NetNS: int(f.Fd())})
	defer k.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := make(chan Change, 16)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- Watch(ctx, int(f.Fd()), ready, func(c Change) { changes <- c }) }()
	<-ready

	st := State{
		Guarded: []GuardedPort{{22, netrule.Tcp}},
		Grants:  []Grant{{Port: 22, Protocol: netrule.Tcp, Source: netip.MustParsePrefix("198.18.1.1/32"), End: time.Now().Add(time.Minute)}},
	}
	if err := k.Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	expectNone := func(what string) {
		t.Helper()
		select {
		case c := <-changes:
			t.Fatalf("%s: reported %v", what, c)
		case <-time.After(200 * time.Millisecond):
		}
	}
	expect := func(what, kind string) Change {
		t.Helper()
		select {
		case c := <-changes:
			if c.Events[kind] == 0 || c.Comm != "nft" {
				t.Fatalf("%s: got %v, want %q by nft", what, c, kind)
			}
			return c
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: no change reported within 2s", what)
		}
		return Change{}
	}
	expectNone("our own Apply")
	if _, err := ns.Exec("nft", "add table inet other; add chain inet other c; add rule inet other c counter"); err != nil {
		t.Fatal(err)
	}
	expectNone("another table")
	if _, err := ns.Exec("nft", "delete table inet drawbridge"); err != nil {
		t.Fatal(err)
	}
	c := expect("delete table", "delete table")
	t.Logf("reported: %v", c)
	if _, err := k.Observe(ctx); err != nil { // forget the cache: the table is gone
		t.Fatal(err)
	}
	if err := k.Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	expectNone("our own re-Apply")
	conf := t.TempDir() + "/nftables.conf"
	if err := os.WriteFile(conf, []byte("flush ruleset\ntable inet filter {\n chain input { type filter hook input priority 0; }\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.Exec("nft", "-f", conf); err != nil {
		t.Fatal(err)
	}
	expect("nft -f with flush ruleset", "delete table")
	if _, err := k.Observe(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.Apply(ctx, st); err != nil {
		t.Fatal(err)
	}
	expectNone("our own re-Apply")
	out, err := ns.Exec("nft", "-a", "list", "chain", "inet", "drawbridge", "input")
	if err != nil {
		t.Fatal(err)
	}
	h := ""
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "guard_tcp") {
			h = l[strings.LastIndex(l, " ")+1:]
		}
	}
	if h == "" {
		t.Fatalf("no guard rule in\n%s", out)
	}
	if _, err := ns.Exec("nft", "delete rule inet drawbridge input handle "+h); err != nil {
		t.Fatal(err)
	}
	expect("delete rule", "delete rule")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch: %v", err)
	}
}
