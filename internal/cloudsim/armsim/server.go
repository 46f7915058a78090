// Package armsim is a test-support Azure Resource Manager: it serves the
// network and compute resources drawbridge uses (NSGs and their
// securityRules, NICs, virtual networks and subnets, public IP addresses,
// Azure Firewalls, virtual machines) over ARM's REST protocol, so that the
// azure provider is tested through the official SDK's real HTTP pipeline.
//
// What it reproduces of ARM: HTTPS with a generated certificate (azcore
// sends bearer tokens over TLS only); a required api-version; resource IDs
// compared case-insensitively; list pagination with nextLink; ETags with
// If-Match / If-None-Match (412); long-running writes answered 201/202 with
// Azure-AsyncOperation (and Location for deletes) polled to completion;
// ARM's error envelope {"error":{"code","message","target"}}; unique NSG
// rule priorities per direction; and injectable faults (429 with
// Retry-After, 500, slow responses, dropped connections, a write token
// bucket). It records every call with the RBAC action it needs.
package armsim

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Options configure a simulator. The zero value is usable.
type Options struct {
	// PageSize is how many items a list page holds before a nextLink
	// (default 100).
	PageSize int
	// AsyncPolls is how many status polls a long-running operation answers
	// "InProgress" before "Succeeded" (default 1).
	AsyncPolls int
	// PollAfter is the retry-after-ms the simulator puts on long-running
	// operation responses (default 5ms; ARM says seconds, tests want speed).
	PollAfter time.Duration
}

// Server is a running simulator.
type Server struct {
	opts Options

	mu  sync.Mutex
	res map[string]doc // by key(id)
	// byType caches the sorted keys of each type (lower-cased) for lists.
	byType map[string][]string
	ops    map[string]*operation
	seq    uint64
	calls  []Call

	faults faults
	// fwWriteHook runs once before a firewall PUT (firewall.go).
	fwWriteHook func(ctx context.Context, id string)

	ln     net.Listener
	srv    *http.Server
	caPEM  []byte
	pool   *x509.CertPool
	url    string
	closed chan struct{}
}

// Start serves a simulator on 127.0.0.1 on a random port (or addr if not
// empty).
func Start(opts Options, addr string) (*Server, error) {
	if opts.PageSize <= 0 {
		opts.PageSize = 100
	}
	if opts.AsyncPolls <= 0 {
		opts.AsyncPolls = 1
	}
	if opts.PollAfter <= 0 {
		opts.PollAfter = 5 * time.Millisecond
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	cert, caPEM, err := selfSigned()
	if err != nil {
		return nil, fmt.Errorf("armsim: certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("armsim: %w", err)
	}
	s := &Server{opts: opts, res: map[string]doc{}, byType: map[string][]string{}, ops: map[string]*operation{}, ln: ln, caPEM: caPEM, pool: pool,
		url: "https://" + ln.Addr().String(), closed: make(chan struct{})}
	s.faults.init()
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serve),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		// HTTP/1.1 only, so that a dropped connection can be simulated by
		// hijacking it.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	go func() {
		defer close(s.closed)
		_ = s.srv.ServeTLS(ln, "", "")
	}()
	return s, nil
}

// URL is the simulator's base URL (the ARM endpoint to configure).
func (s *Server) URL() string { return s.url }

// CAPEM is the simulator's certificate in PEM, for clients to trust.
func (s *Server) CAPEM() []byte { return s.caPEM }

// HTTPClient returns a client that trusts the simulator's certificate.
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 64,
		ForceAttemptHTTP2:   false,
	}}
}

// Close stops the server.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.closed
	return err
}

func (s *Server) etag() string {
	s.seq++
	return `W/"` + strconv.FormatUint(s.seq, 16) + `-` + s.uuid()[:8] + `"`
}

// uuid is a random version-4 UUID (crypto/rand: safe without mu).
func (s *Server) uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
