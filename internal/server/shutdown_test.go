package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/server"
)

// TestCloseDrainsInFlightRequests: a request whose body is still arriving
// when Close begins is served to the end (200), and Close waits for it.
func TestCloseDrainsInFlightRequests(t *testing.T) {
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db"), SampleInventory: true, Insecure: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	body := opsPolicyBody()
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	half := len(body) / 2
	fmt.Fprintf(conn, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", webPol, len(body), body[:half])
	time.Sleep(100 * time.Millisecond) // the server is reading the body

	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a request was in flight", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := conn.Write([]byte(body[half:])); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("in-flight request cut off: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("in-flight request answered %d", resp.StatusCode)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the request finished")
	}
}
