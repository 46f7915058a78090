// Package testcert makes a throwaway certificate authority and server
// certificates for tests of drawbridge over TLS. Keys are Ed25519 and dates
// fixed, so two certificates differing only in serial (of the same number
// of digits) are files of the same size: a test can tell a reload on
// SIGHUP from a reload on file change.
package testcert

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"testing"
	"time"
)

// CA is a certificate authority with one leaf key it issues every
// certificate for.
type CA struct {
	cert    *x509.Certificate
	key     ed25519.PrivateKey
	leafKey ed25519.PrivateKey
}

var (
	notBefore = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter  = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
)

// NewCA makes a CA.
func NewCA(t testing.TB) *CA {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, leafKey, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "drawbridge test CA"},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{cert: cert, key: key, leafKey: leafKey}
}

// WriteCA writes the CA certificate as PEM to path.
func (ca *CA) WriteCA(t testing.TB, path string) {
	t.Helper()
	write(t, path, "CERTIFICATE", ca.cert.Raw)
}

// Issue writes a server certificate for 127.0.0.1, ::1 and localhost with
// serial to certPath, and the leaf key to keyPath.
func (ca *CA) Issue(t testing.TB, serial int64, certPath, keyPath string) {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "drawbridge test server"},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, ca.leafKey.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	write(t, certPath, "CERTIFICATE", der)
	key, err := x509.MarshalPKCS8PrivateKey(ca.leafKey)
	if err != nil {
		t.Fatal(err)
	}
	write(t, keyPath, "PRIVATE KEY", key)
}

func write(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// IssueUnnoticed replaces the pair at certPath and keyPath with a
// certificate of serial, keeping each file's modification time, and
// renames the new files into place so that a watcher polling (mtime, size)
// never sees a half-way state: only an explicit reload picks it up.
func (ca *CA) IssueUnnoticed(t testing.TB, serial int64, certPath, keyPath string) {
	t.Helper()
	tmpCert, tmpKey := certPath+".new", keyPath+".new"
	ca.Issue(t, serial, tmpCert, tmpKey)
	for _, p := range [][2]string{{tmpCert, certPath}, {tmpKey, keyPath}} {
		st, err := os.Stat(p[1])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p[0], st.ModTime(), st.ModTime()); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p[0], p[1]); err != nil {
			t.Fatal(err)
		}
	}
}
