package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The HTTP server bounds a slow request body, a slow response and an idle
// connection (it had only ReadHeaderTimeout), and gives the audit routes,
// which stream, a longer write deadline.
func TestHTTPServerTimeouts(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			if _, err := io.ReadAll(r.Body); err != nil {
				return
			}
		}
		if r.URL.Query().Get("slow") != "" {
			time.Sleep(600 * time.Millisecond)
		}
		io.WriteString(w, "ok")
	})
	srv := newHTTPServer(Config{ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond,
		IdleTimeout: 300 * time.Millisecond, StreamWriteTimeout: 5 * time.Second}, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	base := "http://" + ln.Addr().String()
	get := func(path string) (string, error) {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(base + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	if body, err := get("/drawbridge/v1/vms"); err != nil || body != "ok" {
		t.Fatalf("fast request: %q %v", body, err)
	}
	if body, err := get("/drawbridge/v1/vms?slow=1"); err == nil {
		t.Errorf("a response later than WriteTimeout was delivered: %q", body)
	}
	for _, p := range []string{"/drawbridge/v1/audit?slow=1", "/drawbridge/v1/audit/export?slow=1"} {
		if body, err := get(p); err != nil || body != "ok" {
			t.Errorf("audit route %s past WriteTimeout: %q %v, want ok (stream deadline)", p, body, err)
		}
	}

	// A body trickled slower than ReadTimeout: the connection is cut.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /drawbridge/v1/requests HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
	began := time.Now()
	var werr error
	for i := 0; i < 40 && werr == nil; i++ {
		_, werr = conn.Write([]byte("x"))
		time.Sleep(50 * time.Millisecond)
		conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := conn.Read(make([]byte, 1)); err != nil && !isTimeout(err) {
			werr = err
		}
	}
	if werr == nil {
		t.Fatalf("a body trickled for %v was still being read", time.Since(began))
	}

	// An idle keep-alive connection is closed after IdleTimeout.
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET /drawbridge/v1/vms HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	idle.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := br.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("idle connection still open after 3s: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && !strings.Contains(err.Error(), "reset")
}
