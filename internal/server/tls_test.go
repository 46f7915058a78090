package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/server"
	"github.com/drawbridge/drawbridge/internal/testcert"
)

type tlsFiles struct{ ca, cert, key string }

func startTLSServer(t *testing.T) (*server.Server, *testcert.CA, tlsFiles) {
	t.Helper()
	dir := t.TempDir()
	f := tlsFiles{filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")}
	ca := testcert.NewCA(t)
	ca.WriteCA(t, f.ca)
	ca.Issue(t, 1001, f.cert, f.key)
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(dir, "drawbridge.db"), SampleInventory: true,
		TLSCertFile: f.cert, TLSKeyFile: f.key,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, ca, f
}

// servedSerial opens a new TLS connection and returns the serial of the
// certificate the server presents.
func servedSerial(t *testing.T, srv *server.Server, caFile string) int64 {
	t.Helper()
	pool := x509.NewCertPool()
	b, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(b)
	conn, err := tls.Dial("tcp", strings.TrimPrefix(srv.URL, "https://"), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// The server serves HTTPS with --tls-cert/--tls-key; the client verifies it
// against --ca-file and refuses it with only the system roots.
func TestTLSServerAndClient(t *testing.T) {
	srv, _, f := startTLSServer(t)
	if !strings.HasPrefix(srv.URL, "https://") {
		t.Fatalf("URL %s, want https://", srv.URL)
	}
	c, err := client.New(srv.URL, srv.AdminToken, client.WithCAFile(f.ca))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.VMs(context.Background()); err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	plain, _ := client.New(srv.URL, srv.AdminToken)
	if _, err := plain.VMs(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v, want a certificate error", err)
	}
	if _, err := client.New(srv.URL, "", client.WithCAFile(f.key)); err == nil {
		t.Fatal("a CA file without a certificate was accepted")
	}
}

// ReloadTLS (SIGHUP) loads the files again even when their size and time
// look unchanged; a change of the files is picked up on its own; a broken
// pair is refused and the certificate in use kept.
func TestTLSReload(t *testing.T) {
	srv, ca, f := startTLSServer(t)
	if got := servedSerial(t, srv, f.ca); got != 1001 {
		t.Fatalf("serial %d, want 1001", got)
	}
	// Same size, same modification time: only an explicit reload sees it.
	st, _ := os.Stat(f.cert)
	ca.IssueUnnoticed(t, 1002, f.cert, f.key)
	if st2, _ := os.Stat(f.cert); st2.Size() != st.Size() || !st2.ModTime().Equal(st.ModTime()) {
		t.Fatalf("test certificates differ in size or time: %d %v, %d %v", st.Size(), st.ModTime(), st2.Size(), st2.ModTime())
	}
	time.Sleep(1100 * time.Millisecond)
	if got := servedSerial(t, srv, f.ca); got != 1001 {
		t.Fatalf("serial %d before the reload, want 1001 (files look unchanged)", got)
	}
	if err := srv.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, srv, f.ca); got != 1002 {
		t.Fatalf("serial %d after ReloadTLS, want 1002", got)
	}
	// A renewal written in place is served within a second or so.
	ca.Issue(t, 1003, f.cert, f.key)
	later := time.Now().Add(time.Minute)
	os.Chtimes(f.cert, later, later)
	deadline := time.Now().Add(5 * time.Second)
	for servedSerial(t, srv, f.ca) != 1003 {
		if time.Now().After(deadline) {
			t.Fatal("a changed certificate file was not picked up within 5s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A broken pair: the reload fails, the previous certificate stays.
	os.WriteFile(f.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")}), 0o600)
	if err := srv.ReloadTLS(); err == nil {
		t.Fatal("ReloadTLS accepted a broken key")
	}
	if got := servedSerial(t, srv, f.ca); got != 1003 {
		t.Fatalf("serial %d after a failed reload, want 1003", got)
	}
}

func TestTLSNeedsBothFiles(t *testing.T) {
	_, err := server.Start(context.Background(), server.Config{Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "d.db"), TLSCertFile: "x.pem"})
	if err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("cert without key: %v", err)
	}
}
