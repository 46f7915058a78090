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

// TestCloseEndsAgentStreams: an open agent stream ends cleanly (EOF after
// whole lines) when the server closes, and Close does not wait out its
// timeout for it.
func TestCloseEndsAgentStreams(t *testing.T) {
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(t.TempDir(), "drawbridge.db"), Insecure: true, ShutdownTimeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	vm := "/subscriptions/s1/resourceGroups/rack/providers/Microsoft.Compute/virtualMachines/h1"
	inv := fmt.Sprintf(`{"vms":[{"id":%q,"name":"h1","cloud":"host","provider":"nftables","location":"westeurope","addresses":["198.18.200.10"]}]}`, vm)
	if code, body, _ := do(t, "POST", srv.URL+"/drawbridge/v1/inventory", "", "", inv); code != 200 {
		t.Fatalf("inventory: %d %s", code, body)
	}
	resp, err := http.Get(srv.URL + "/drawbridge/v1/agent/stream?vm=" + vm)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", err, resp)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	if _, err := rd.ReadString('\n'); err != nil {
		t.Fatalf("first line: %v", err)
	}
	began := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("Close took %v with an agent stream open", took)
	}
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			if err.Error() != "EOF" || line != "" {
				t.Fatalf("stream ended with %v after %q; want a clean EOF", err, line)
			}
			return
		}
	}
}
