package e2e

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/netns"
)

// Run as root:
//
//	go test -run '^$' -bench TimeToOpen -benchtime 1x ./internal/e2e/
//
// It measures, in one run and on the same namespace topology and harness:
//   - drawbridge time-to-open: request POSTed → first successful TCP connect
//     from client namespace A (-samples requests, each from its own source
//     address, so no request finds the port already open);
//   - fwknop time-to-open: SPA packet sent (UDP, from A) → first successful
//     connect, with fwknopd's default configuration (pcap on the VM's
//     interface) driving iptables (iptables-nft);
//   - drawbridge time-to-close: grant end time → first refused connect, with
//     the server running and with it killed (SIGKILL).
//
// Every connect attempt gives up after 1 ms (a dropped SYN is never
// answered), so figures carry up to about 1 ms of polling granularity.
var samples = flag.Int("samples", 200, "time-to-open requests per system")

func BenchmarkTimeToOpen(b *testing.B) {
	requireHost(b)
	dir := b.TempDir()
	n := *samples
	for range b.N {
		ours := measureDrawbridge(b, dir, n)
		b.ReportMetric(ms(pct(ours.open, 50)), "open-p50-ms")
		b.ReportMetric(ms(pct(ours.open, 95)), "open-p95-ms")
		b.ReportMetric(ms(pct(ours.open, 99)), "open-p99-ms")
		b.ReportMetric(ms(pct(ours.close, 50)), "close-p50-ms")
		b.ReportMetric(ms(pct(ours.close, 99)), "close-p99-ms")
		b.ReportMetric(ms(pct(ours.closeDead, 50)), "close-dead-p50-ms")
		b.ReportMetric(ms(pct(ours.closeDead, 99)), "close-dead-p99-ms")
		b.Logf("drawbridge time-to-open over %d requests: %s", len(ours.open), summary(ours.open))
		b.Logf("drawbridge time-to-close (server up), %d grants: %s", len(ours.close), summary(ours.close))
		b.Logf("drawbridge time-to-close (server killed), %d grants: %s", len(ours.closeDead), summary(ours.closeDead))
		fw, err := measureFwknop(b, dir, n)
		if err != nil {
			b.Logf("fwknop not measured: %v", err)
			continue
		}
		b.ReportMetric(ms(pct(fw, 50)), "fwknop-open-p50-ms")
		b.ReportMetric(ms(pct(fw, 99)), "fwknop-open-p99-ms")
		b.ReportMetric(float64(pct(fw, 50))/float64(pct(ours.open, 50)), "fwknop/drawbridge-p50")
		b.Logf("fwknop time-to-open over %d SPA packets: %s", len(fw), summary(fw))
		b.Logf("p50 ratio fwknop/drawbridge: %.1fx", float64(pct(fw, 50))/float64(pct(ours.open, 50)))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func summary(ds []time.Duration) string {
	return fmt.Sprintf("p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, min %.2f ms, max %.2f ms",
		ms(pct(ds, 50)), ms(pct(ds, 95)), ms(pct(ds, 99)), ms(pct(ds, 0)), ms(pct(ds, 100)))
}

// addPool gives A the addresses 198.18.4.1 ... (n of them, /32) and routes
// them from the VM over A's link.
func addPool(b *testing.B, tp *topo, n int) []netip.Addr {
	b.Helper()
	if n > 1000 {
		b.Fatalf("-samples %d: at most 1000", n)
	}
	var pool []netip.Addr
	var batch strings.Builder
	base := netip.MustParseAddr("198.18.4.0")
	a := base
	for range n {
		a = a.Next()
		pool = append(pool, a)
		fmt.Fprintf(&batch, "addr add %s/32 dev eth0\n", a)
	}
	f := filepath.Join(b.TempDir(), "batch")
	if err := os.WriteFile(f, []byte(batch.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("ip", "-n", tp.a.Name(), "-batch", f).CombinedOutput(); err != nil {
		b.Fatalf("ip -batch: %v: %s", err, out)
	}
	if err := tp.vm.IP("route", "add", "198.18.4.0/22", "dev", "va"); err != nil {
		b.Fatal(err)
	}
	return pool
}

// openFrom sends (trigger) and then dials from src until the first
// connection succeeds; it returns the time from trigger's start to then.
func openFrom(ns *netns.NS, src, dst netip.Addr, port int, trigger func() time.Time) (time.Duration, error) {
	var took time.Duration
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: time.Millisecond, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		started := make(chan time.Time, 1)
		go func() { started <- trigger() }()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			c, err := d.Dial("tcp", hostPort(dst, port))
			if err == nil {
				at := time.Now()
				c.Close()
				took = at.Sub(<-started)
				return nil
			}
			if !isTimeout(err) {
				time.Sleep(200 * time.Microsecond)
			}
		}
		return fmt.Errorf("%v → %s never opened", src, hostPort(dst, port))
	})
	return took, err
}

// closeAfter waits until shortly before end, then dials from src every
// millisecond until a connect fails; it returns that attempt's start minus
// end (negative: closed early).
func closeAfter(ns *netns.NS, src, dst netip.Addr, port int, end time.Time) (time.Duration, error) {
	time.Sleep(time.Until(end) - 50*time.Millisecond)
	var late time.Duration
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: 20 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
		deadline := end.Add(3 * time.Second)
		for time.Now().Before(deadline) {
			began := time.Now()
			c, err := d.Dial("tcp", hostPort(dst, port))
			if err != nil {
				late = began.Sub(end)
				return nil
			}
			c.Close()
			time.Sleep(time.Millisecond)
		}
		return fmt.Errorf("%v still open 3s after the end time", src)
	})
	return late, err
}

type ourFigures struct{ open, close, closeDead []time.Duration }

func measureDrawbridge(b *testing.B, dir string, n int) ourFigures {
	b.Helper()
	tp := newTopo(b)
	const closeN = 10
	pool := addPool(b, tp, n+2*closeN)
	srv, url := startServer(b, dir, "bench-server")
	c := setUp(b, dir, url, tp)
	ag := startAgent(b, dir, "bench-agent", url, tp.vm)
	kern := openKernel(b, tp.vm)
	if !waitFor(5*time.Second, func() bool {
		st, err := kern.k.Observe(context.Background())
		return err == nil && len(st.Guarded) == 2
	}) {
		b.Fatal("the agent did not enable JIT within 5s")
	}
	ctx := context.Background()
	var f ourFigures
	for i := range n {
		src := pool[i]
		took, err := openFrom(tp.a, src, tp.vmA4, 22, func() time.Time {
			t0 := time.Now()
			if _, err := c.Request(ctx, api.SimpleRequest{VM: vmID, Ports: []int{22}, Duration: "1h", Source: src.String()}); err != nil {
				b.Errorf("request %d: %v", i, err)
			}
			return t0
		})
		if err != nil {
			b.Fatalf("sample %d: %v", i, err)
		}
		f.open = append(f.open, took)
	}
	// Time-to-close, one grant at a time (a newer request on the same port
	// ends the older grant, as in Azure).
	for i, src := range pool[n : n+closeN] {
		f.close = append(f.close, measureClose(b, c, tp, src, i, nil))
	}
	// The same with the server killed (SIGKILL) while each grant is active,
	// restarted on the same address afterwards.
	addr := strings.TrimPrefix(url, "http://")
	for i, src := range pool[n+closeN : n+2*closeN] {
		f.closeDead = append(f.closeDead, measureClose(b, c, tp, src, i, srv.kill))
		before := strings.Count(ag.logText(), "msg=\"snapshot received\"")
		srv, _ = startServerOn(b, dir, fmt.Sprintf("bench-server-%d", i), addr)
		// The next 700 ms grant must not race the agent's reconnect: wait
		// (bounded) until the agent has the restarted server's snapshot.
		if !waitFor(10*time.Second, func() bool {
			return strings.Count(ag.logText(), "msg=\"snapshot received\"") > before
		}) {
			b.Fatalf("the agent did not reconnect within 10s of server restart %d", i)
		}
	}
	return f
}

// measureClose opens a 1 s grant (the shortest a request may have) for src,
// runs between (e.g. kills the server), and measures how long after the end
// time new connects fail.
func measureClose(b *testing.B, c *client.Client, tp *topo, src netip.Addr, i int, between func()) time.Duration {
	b.Helper()
	var r api.RequestResource
	err := retry(func() error {
		var err error
		r, err = c.Request(context.Background(), api.SimpleRequest{VM: vmID, Ports: []int{22}, Duration: "1s", Source: src.String()})
		return err
	})
	if err != nil {
		b.Fatalf("close sample %d: %v", i, err)
	}
	end := r.VirtualMachines[0].Ports[0].EndTimeUtc
	if _, err := openFrom(tp.a, src, tp.vmA4, 22, time.Now); err != nil {
		b.Fatal(err)
	}
	if between != nil {
		between()
	}
	late, err := closeAfter(tp.a, src, tp.vmA4, 22, end)
	if err != nil {
		b.Fatalf("close sample %d: %v", i, err)
	}
	return late
}

// retry calls f until it succeeds, at most 50 times over about 5 s (a
// restarted server may still be starting, or its agent reconnecting).
func retry(f func() error) error {
	var err error
	for range 50 {
		if err = f(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// measureFwknop runs fwknopd (its defaults: pcap on the VM's interface,
// iptables) in a fresh copy of the topology and measures SPA packet sent →
// first successful connect to 22, each packet authorising its own source.
func measureFwknop(b *testing.B, dir string, n int) ([]time.Duration, error) {
	b.Helper()
	for _, bin := range []string{"fwknopd", "fwknop", "iptables"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("%s not installed (apt-get install fwknop-server fwknop-client iptables): %v", bin, err)
		}
	}
	tp := newTopo(b)
	pool := addPool(b, tp, n)
	fdir := filepath.Join(dir, "fwknop")
	if err := os.MkdirAll(filepath.Join(fdir, "run"), 0o700); err != nil {
		return nil, err
	}
	rc := filepath.Join(fdir, "fwknoprc")
	if err := os.WriteFile(rc, nil, 0o600); err != nil {
		return nil, err
	}
	keys, err := exec.Command("fwknop", "--rc-file", rc, "--key-gen", "--use-hmac").Output()
	if err != nil {
		return nil, fmt.Errorf("fwknop --key-gen: %v", err)
	}
	var key, hkey string
	for _, l := range strings.Split(string(keys), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			switch f[0] {
			case "KEY_BASE64:":
				key = f[1]
			case "HMAC_KEY_BASE64:":
				hkey = f[1]
			}
		}
	}
	if key == "" || hkey == "" {
		return nil, fmt.Errorf("fwknop --key-gen printed no keys: %s", keys)
	}
	access := fmt.Sprintf("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nOPEN_PORTS tcp/22\nFW_ACCESS_TIMEOUT 3600\n", key, hkey)
	conf := fmt.Sprintf("PCAP_INTF va;\nFWKNOP_RUN_DIR %s;\n", filepath.Join(fdir, "run"))
	if err := os.WriteFile(filepath.Join(fdir, "access.conf"), []byte(access), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(fdir, "fwknopd.conf"), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	// The same protection drawbridge gives: new connections to 22 dropped,
	// established ones kept.
	for _, rule := range [][]string{
		{"-A", "INPUT", "-p", "tcp", "--dport", "22", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
		{"-A", "INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP"},
	} {
		if out, err := tp.vm.Exec("iptables", rule...); err != nil {
			return nil, fmt.Errorf("iptables: %v: %s", err, out)
		}
	}
	// SPA packets, generated before the clock starts (fwknopd accepts
	// packets up to 120 s old by default).
	pkts := make([][]byte, n)
	for i, src := range pool {
		f := filepath.Join(fdir, fmt.Sprintf("spa%d", i))
		cmd := exec.Command("fwknop", "--rc-file", rc, "-A", "tcp/22", "-a", src.String(), "-D", tp.vmA4.String(),
			"--use-hmac", "--key-base64-rijndael", key, "--key-base64-hmac", hkey, "-T", "-B", f)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("fwknop -T: %v: %s", err, out)
		}
		p, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		pkts[i] = []byte(strings.TrimSpace(string(p)))
	}
	lf, err := os.Create(filepath.Join(fdir, "fwknopd.log"))
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	d := exec.Command("ip", "netns", "exec", tp.vm.Name(), "fwknopd", "-f",
		"-c", filepath.Join(fdir, "fwknopd.conf"), "-a", filepath.Join(fdir, "access.conf"),
		"-d", filepath.Join(fdir, "run", "digest.cache"), "-p", filepath.Join(fdir, "run", "fwknopd.pid"), "-i", "va")
	d.Stdout, d.Stderr = lf, lf
	if err := d.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = d.Process.Kill()
		_ = d.Wait()
	}()
	if !waitFor(5*time.Second, func() bool {
		b, _ := os.ReadFile(lf.Name())
		return strings.Contains(string(b), "main event loop")
	}) {
		log, _ := os.ReadFile(lf.Name())
		return nil, fmt.Errorf("fwknopd did not start within 5s: %s", log)
	}
	var out []time.Duration
	for i, src := range pool {
		took, err := openFrom(tp.a, src, tp.vmA4, 22, func() time.Time {
			var t0 time.Time
			err := tp.a.Do(func() error {
				u, err := net.DialUDP("udp", &net.UDPAddr{IP: src.AsSlice()}, &net.UDPAddr{IP: tp.vmA4.AsSlice(), Port: 62201})
				if err != nil {
					return err
				}
				defer u.Close()
				t0 = time.Now()
				_, err = u.Write(pkts[i])
				return err
			})
			if err != nil {
				b.Errorf("SPA packet %d: %v", i, err)
			}
			return t0
		})
		if err != nil {
			log, _ := os.ReadFile(lf.Name())
			return out, fmt.Errorf("sample %d: %v; fwknopd log tail: %s", i, err, tail(string(log), 2000))
		}
		out = append(out, took)
	}
	return out, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
