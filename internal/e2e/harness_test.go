package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
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

// The test host's VM, as the inventory names it.
const vmID = "/subscriptions/00000000-0000-0000-0000-0000000000e2/resourceGroups/e2e/providers/Microsoft.Compute/virtualMachines/host1"

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// requireHost skips (with the reason) where namespaces or nftables are not
// usable.
func requireHost(t testing.TB) {
	t.Helper()
	if err := netns.Available(); err != nil {
		t.Skipf("skipping: network namespaces unavailable: %v", err)
	}
	probe, err := netns.New("dbe2e-probe")
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	defer probe.Close()
	f, err := probe.Open()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	defer f.Close()
	k := nftables.NewKernel(nftables.Options{NetNS: int(f.Fd())})
	defer k.Close()
	if err := k.Apply(context.Background(), nftables.State{}); err != nil {
		t.Skipf("skipping: the kernel refuses nftables (nf_tables module?): %v", err)
	}
}

// topo is the test network: a "vm" namespace with one veth to each client
// namespace. A reaches the VM at 198.18.1.1 / 2001:2:0:1::1 from
// 198.18.1.2 / 2001:2:0:1::2; B at 198.18.2.1 / 2001:2:0:2::1 from
// 198.18.2.2 / 2001:2:0:2::2.
type topo struct {
	vm, a, b   *netns.NS
	vmA4, vmA6 netip.Addr // the VM's addresses on A's link
	vmB4, vmB6 netip.Addr
	a4, a6     netip.Addr
	b4, b6     netip.Addr
	listeners  []net.Listener
}

func newTopo(t testing.TB) *topo {
	t.Helper()
	tp := &topo{
		vmA4: netip.MustParseAddr("198.18.1.1"), a4: netip.MustParseAddr("198.18.1.2"),
		vmA6: netip.MustParseAddr("2001:2:0:1::1"), a6: netip.MustParseAddr("2001:2:0:1::2"),
		vmB4: netip.MustParseAddr("198.18.2.1"), b4: netip.MustParseAddr("198.18.2.2"),
		vmB6: netip.MustParseAddr("2001:2:0:2::1"), b6: netip.MustParseAddr("2001:2:0:2::2"),
	}
	var err error
	must := func(e error) {
		if e != nil {
			t.Fatal(e)
		}
	}
	tp.vm, err = netns.New("dbvm")
	must(err)
	t.Cleanup(func() { tp.vm.Close() })
	tp.a, err = netns.New("dbA")
	must(err)
	t.Cleanup(func() { tp.a.Close() })
	tp.b, err = netns.New("dbB")
	must(err)
	t.Cleanup(func() { tp.b.Close() })
	must(netns.Veth(tp.vm, "va", tp.a, "eth0"))
	must(netns.Veth(tp.vm, "vb", tp.b, "eth0"))
	must(tp.vm.AddAddr("va", netip.PrefixFrom(tp.vmA4, 24)))
	must(tp.vm.AddAddr("va", netip.PrefixFrom(tp.vmA6, 64)))
	must(tp.vm.AddAddr("vb", netip.PrefixFrom(tp.vmB4, 24)))
	must(tp.vm.AddAddr("vb", netip.PrefixFrom(tp.vmB6, 64)))
	must(tp.a.AddAddr("eth0", netip.PrefixFrom(tp.a4, 24)))
	must(tp.a.AddAddr("eth0", netip.PrefixFrom(tp.a6, 64)))
	must(tp.b.AddAddr("eth0", netip.PrefixFrom(tp.b4, 24)))
	must(tp.b.AddAddr("eth0", netip.PrefixFrom(tp.b6, 64)))
	for _, port := range []int{22, 3389, 8080} {
		l, err := tp.vm.Listen("tcp", fmt.Sprintf("[::]:%d", port))
		must(err)
		netns.Echo(l)
		tp.listeners = append(tp.listeners, l)
	}
	t.Cleanup(func() {
		for _, l := range tp.listeners {
			l.Close()
		}
	})
	// Links are up; wait (bounded) until A and B reach the VM on 8080.
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range []struct {
		ns   *netns.NS
		addr netip.Addr
	}{{tp.a, tp.vmA4}, {tp.a, tp.vmA6}, {tp.b, tp.vmB4}, {tp.b, tp.vmB6}} {
		for !connects(c.ns, c.addr, 8080, 200*time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("topology: %s cannot reach %v:8080", c.ns.Name(), c.addr)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return tp
}

func hostPort(a netip.Addr, port int) string { return netip.AddrPortFrom(a, uint16(port)).String() }

// dial connects from ns to addr:port within timeout.
func dial(ns *netns.NS, a netip.Addr, port int, timeout time.Duration) (net.Conn, error) {
	return ns.Dial(context.Background(), "tcp", hostPort(a, port), timeout)
}

// connects reports whether a new TCP connection from ns to addr:port is
// established within timeout (a dropped SYN times out).
func connects(ns *netns.NS, a netip.Addr, port int, timeout time.Duration) bool {
	c, err := dial(ns, a, port, timeout)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// proc is a drawbridge process with its log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func (p *proc) kill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

func (p *proc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func startProc(t testing.TB, name, logPath string, args ...string) (*proc, *bufio.Scanner) {
	t.Helper()
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testbin.Drawbridge(t), args...)
	cmd.Stderr = lf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	lf.Close()
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("---- %s log ----\n%s", name, p.logText())
		}
	})
	return p, bufio.NewScanner(out)
}

// startServer runs `drawbridge server` on 127.0.0.1 with SQLite in dir and
// returns its URL.
func startServer(t testing.TB, dir, name string) (*proc, string) {
	return startServerOn(t, dir, name, "127.0.0.1:0")
}

// startServerOn is startServer listening on listen (host:port).
func startServerOn(t testing.TB, dir, name, listen string) (*proc, string) {
	t.Helper()
	p, sc := startProc(t, name, filepath.Join(dir, name+".log"), "server", "--db", filepath.Join(dir, "drawbridge.db"), "--listen", listen, "--insecure-no-auth")
	urls := make(chan string, 1)
	go func() {
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 0 && strings.HasPrefix(f[len(f)-1], "http://") {
				select {
				case urls <- f[len(f)-1]:
				default:
				}
			}
		}
	}()
	select {
	case u := <-urls:
		return p, u
	case <-p.done:
		t.Fatalf("server exited at start:\n%s", p.logText())
	case <-time.After(20 * time.Second):
		t.Fatalf("server printed no URL within 20s:\n%s", p.logText())
	}
	return nil, ""
}

// startAgent runs `drawbridge agent` for vmID, programming the VM namespace.
func startAgent(t testing.TB, dir, name, url string, vm *netns.NS) *proc {
	t.Helper()
	p, sc := startProc(t, name, filepath.Join(dir, name+".log"), "agent", "--server", url, "--vm", vmID, "--netns", vm.Path(), "--debug", "--max-backoff", "500ms",
		"--state-file", filepath.Join(dir, "agent-state.json"))
	go func() {
		for sc.Scan() {
		}
	}()
	return p
}

// cli runs the drawbridge CLI against url and returns its stdout.
func cli(t testing.TB, url string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testbin.Drawbridge(t), append([]string{"--server", url}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("drawbridge %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

// setUp loads the inventory (the VM as an nftables host) and the policy
// (22 and 3389 guarded) through the CLI.
func setUp(t testing.TB, dir, url string, tp *topo) *client.Client {
	t.Helper()
	inv := fmt.Sprintf(`{"vms":[{"id":%q,"name":"host1","cloud":"host","provider":"nftables","location":"westeurope","addresses":[%q,%q,%q,%q]}]}`,
		vmID, tp.vmA4, tp.vmA6, tp.vmB4, tp.vmB6)
	invPath := filepath.Join(dir, "inventory.json")
	if err := os.WriteFile(invPath, []byte(inv), 0o600); err != nil {
		t.Fatal(err)
	}
	cli(t, url, "inventory", "apply", "-f", invPath)
	cli(t, url, "policy", "set", vmID, "--port", "22", "--port", "3389", "--max-duration", "PT3H")
	c, err := client.New(url, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kernel observes the VM namespace's drawbridge table.
type kernel struct {
	f *os.File
	k *nftables.Kernel
}

func openKernel(t testing.TB, ns *netns.NS) *kernel {
	t.Helper()
	f, err := ns.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	k := nftables.NewKernel(nftables.Options{NetNS: int(f.Fd())})
	t.Cleanup(func() { k.Close() })
	return &kernel{f: f, k: k}
}

// tables lists the namespace's nftables tables as "family name".
func (k *kernel) tables(t testing.TB) []string {
	t.Helper()
	c, err := nft.New(nft.WithNetNSFd(int(k.f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseLasting()
	ts, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tb := range ts {
		out = append(out, fmt.Sprintf("%d %s", tb.Family, tb.Name))
	}
	return out
}

// waitFor polls cond every 5ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// firstConnect dials from ns every attempt (each with its own short
// timeout) until one connects, and returns when that happened; it gives up
// at deadline.
func firstConnect(ns *netns.NS, a netip.Addr, port int, attempt time.Duration, deadline time.Time, start func()) (time.Time, error) {
	var at time.Time
	err := ns.Do(func() error {
		if start != nil {
			start()
		}
		d := net.Dialer{Timeout: attempt}
		for time.Now().Before(deadline) {
			c, err := d.Dial("tcp", hostPort(a, port))
			if err == nil {
				at = time.Now()
				c.Close()
				return nil
			}
			if !isTimeout(err) {
				time.Sleep(attempt)
			}
		}
		return fmt.Errorf("no connection to %v:%d before the deadline", a, port)
	})
	return at, err
}

// firstRefusal dials every attempt until a connection fails and returns when
// that attempt started (a dropped SYN shows as a timeout).
func firstRefusal(ns *netns.NS, a netip.Addr, port int, attempt time.Duration, deadline time.Time) (time.Time, error) {
	var at time.Time
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: attempt}
		for time.Now().Before(deadline) {
			began := time.Now()
			c, err := d.Dial("tcp", hostPort(a, port))
			if err != nil {
				at = began
				return nil
			}
			c.Close()
			time.Sleep(time.Millisecond)
		}
		return fmt.Errorf("%v:%d still accepts connections at the deadline", a, port)
	})
	return at, err
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
