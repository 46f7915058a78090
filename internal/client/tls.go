package client

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
)

// Option configures a Client.
type Option func(*Client) error

// WithCAFile makes the client trust only the PEM CA certificates in path
// for https:// servers, instead of the system's roots (a private CA, a
// self-signed server). An empty path keeps the system roots.
func WithCAFile(path string) Option {
	return func(c *Client) error {
		t, err := Transport(path)
		if err != nil {
			return err
		}
		c.http.Transport = t
		return nil
	}
}

// Transport returns an HTTP transport that verifies servers against the
// PEM CA certificates in caFile, or the system roots if caFile is empty.
// The agent uses it for its own long-lived client.
func Transport(caFile string) (*http.Transport, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if caFile == "" {
		return t, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate in it", caFile)
	}
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return t, nil
}
