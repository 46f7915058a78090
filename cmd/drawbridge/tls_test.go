package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/server"
	"github.com/drawbridge/drawbridge/internal/testbin"
	"github.com/drawbridge/drawbridge/internal/testcert"
)

type certFiles struct{ ca, cert, key string }

func writeCerts(t *testing.T) (*testcert.CA, certFiles) {
	dir := t.TempDir()
	f := certFiles{filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
	ca := testcert.NewCA(t)
	ca.WriteCA(t, f.ca)
	ca.Issue(t, 1001, f.cert, f.key)
	return ca, f
}

// runWith runs the CLI in-process with env as its whole environment.
func runWith(env map[string]string, args ...string) result {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb, func(k string) string { return env[k] })
	return result{out.String(), errb.String(), code}
}

// The CLI reaches an HTTPS server through --ca-file or DRAWBRIDGE_CA_FILE,
// and refuses it when the certificate does not verify.
func TestCLIOverTLS(t *testing.T) {
	_, f := writeCerts(t)
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db"), SampleInventory: true,
		TLSCertFile: f.cert, TLSKeyFile: f.key,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	env := map[string]string{"DRAWBRIDGE_SERVER": srv.URL, "DRAWBRIDGE_TOKEN": srv.AdminToken}
	if r := runWith(env, "vm", "list", "--ca-file", f.ca); r.code != 0 || !strings.Contains(r.stdout, "web-01") {
		t.Fatalf("--ca-file: %+v", r)
	}
	if r := runWith(env, "vm", "list"); r.code != exitUnavailable || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("no CA: %+v, want exit 7 with a certificate error", r)
	}
	env["DRAWBRIDGE_CA_FILE"] = f.ca
	if r := runWith(env, "vm", "list"); r.code != 0 || !strings.Contains(r.stdout, "web-01") {
		t.Fatalf("DRAWBRIDGE_CA_FILE: %+v", r)
	}
	if r := runWith(env, "vm", "list", "--ca-file", filepath.Join(t.TempDir(), "nope.pem")); r.code != exitUsage || !strings.Contains(r.stderr, "--ca-file") {
		t.Fatalf("missing CA file: %+v, want exit 2 naming --ca-file", r)
	}
}

func TestServerNetFlagsRefuseBadInput(t *testing.T) {
	db := filepath.Join(t.TempDir(), "d.db")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"server", "--db", db, "--trusted-proxy", "10.0.0.0/33"}, "--trusted-proxy"},
		{[]string{"server", "--db", db, "--trusted-proxy", "proxy.example"}, "--trusted-proxy"},
		{[]string{"server", "--db", db, "--tls-cert", "x.pem"}, "--tls-key"},
		{[]string{"server", "--db", db, "--tls-cert", "nope.pem", "--tls-key", "nope.pem"}, "nope.pem"},
	} {
		if r := runWith(nil, c.args...); (r.code != exitUsage && r.code != exitFailure) || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d stderr %q; want exit 2 (or 1 for an unreadable file) naming %s", c.args, r.code, r.stderr, c.want)
		}
	}
	if _, err := os.Stat(db); err == nil {
		t.Error("a refused start created the database")
	}
}

// A real server process serves its certificate again after SIGHUP, even
// when the files' size and time look unchanged.
func TestServerProcessReloadsCertificateOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a real process")
	}
	ca, f := writeCerts(t)
	dir := t.TempDir()
	cmd := exec.Command(testbin.Drawbridge(t), "server", "--db", filepath.Join(dir, "d.db"), "--listen", "127.0.0.1:0",
		"--tls-cert", f.cert, "--tls-key", f.key, "--trusted-proxy", "127.0.0.1", "--trusted-proxy", "10.0.0.0/8,2001:db8::/32")
	var logb bytes.Buffer
	cmd.Stderr = &logb
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 0 && strings.HasPrefix(f[len(f)-1], "https://") {
				urls <- f[len(f)-1]
			}
		}
	}()
	var addr string
	select {
	case u := <-urls:
		addr = strings.TrimPrefix(u, "https://")
	case <-time.After(20 * time.Second):
		t.Fatalf("no https:// URL within 20s")
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(f.ca)
	pool.AppendCertsFromPEM(pem)
	serial := func() int64 {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := serial(); got != 1001 {
		t.Fatalf("serial %d, want 1001", got)
	}
	ca.IssueUnnoticed(t, 1002, f.cert, f.key)
	time.Sleep(1100 * time.Millisecond)
	if got := serial(); got != 1001 {
		t.Fatalf("serial %d before SIGHUP, want 1001", got)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for serial() != 1002 {
		if time.Now().After(deadline) {
			t.Fatal("the certificate was not reloaded within 5s of SIGHUP")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGINT: %v\n%s", err, logb.String())
	}
}
