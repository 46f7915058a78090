package main

import (
	"context"
	"strings"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

func TestSafeText(t *testing.T) {
	for in, want := range map[string]string{
		"patch night":         "patch night",
		"Zürich – 東京":         "Zürich – 東京",
		"ok\nforged":          `"ok\nforged"`,
		"tab\there":           `"tab\there"`,
		"\x1b[2K":             `"\x1b[2K"`,
		"bad \xff byte":       `"bad \xff byte"`,
		"rtl \u202e override": `"rtl \u202e override"`,
		"cr\roverwrite":       `"cr\roverwrite"`,
	} {
		if got := safeText(in); got != want {
			t.Errorf("safeText(%q) = %s, want %s", in, got, want)
		}
	}
}

// forged is a justification that, printed raw, adds a table row of its own
// and erases the terminal line ("\x1b[2K").
const forged = "ok\n2026-01-01T00:00:00Z  root  web-01  22  0.0.0.0/0  2099-01-01T00:00:00Z  Initiated\x1b[2K"

// The forged row must not appear in policy get or request pending, the
// escape sequence must not reach the terminal, and JSON output keeps the
// justification exactly as written.
func TestTablesQuoteForgedRows(t *testing.T) {
	srv := startServer(t)
	u := srv.URL
	c, err := client.New(u, srv.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	pid := jit.PolicyID("00000000-0000-0000-0000-000000000001", "demo-rg", "westeurope", "web")
	if _, err := c.PutPolicy(context.Background(), pid, api.PolicyResource{Properties: api.PolicyProperties{VirtualMachines: []jit.VMPolicy{{
		ID: web01, Ports: []jit.PortPolicy{
			{Number: 22, Protocol: netrule.Tcp, AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H"},
			{Number: 3389, Protocol: netrule.Tcp, AllowedSourceAddressPrefix: "*", MaxRequestAccessDuration: "PT3H",
				RequireApproval: &jit.ApprovalRule{Approvers: "ops", Count: 1}}}}}}}); err != nil {
		t.Fatal(err)
	}
	ok(t, u, "request", "web-01", "--port", "22", "--duration", "1h", "--source", "198.18.0.4", "--justification", forged)
	ok(t, u, "request", "web-01", "--port", "3389", "--duration", "1h", "--source", "198.18.0.5", "--justification", forged)

	for _, args := range [][]string{{"policy", "get", "web-01"}, {"request", "pending"}} {
		out := ok(t, u, args...)
		if strings.ContainsRune(out, '\x1b') {
			t.Errorf("%v passes an escape sequence to the terminal:\n%q", args, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "2026-01-01T00:00:00Z") {
				t.Errorf("%v prints a forged row: %q", args, line)
			}
		}
		if !strings.Contains(out, `"ok\n2026-01-01T00:00:00Z`) || !strings.Contains(out, `Initiated\x1b[2K"`) {
			t.Errorf("%v does not show the justification quoted:\n%s", args, out)
		}
	}
	pol := decodeJSON[api.PolicyResource](t, ok(t, u, "policy", "get", "web-01", "-o", "json"))
	if len(pol.Properties.Requests) == 0 || pol.Properties.Requests[0].Justification != forged {
		t.Errorf("JSON output changed the justification: %+v", pol.Properties.Requests)
	}
	if out := ok(t, u, "request", "pending", "-o", "json"); !strings.Contains(out, `"ok\n2026-01-01T00:00:00Z  root`) || !strings.Contains(out, `Initiated\u001b[2K"`) {
		t.Errorf("request pending -o json does not carry the justification as JSON encodes it:\n%s", out)
	}
}

// An error line quotes control characters too (here from a file name).
func TestErrorLineQuotesControlCharacters(t *testing.T) {
	r := runWith(map[string]string{"DRAWBRIDGE_SERVER": "https://127.0.0.1:1"}, "vm", "list", "--ca-file", "/nonexistent/\x1b[2Kx")
	if r.code != exitUsage || strings.ContainsRune(r.stderr, '\x1b') || !strings.Contains(r.stderr, `\x1b[2Kx`) {
		t.Fatalf("exit %d stderr %q; want exit 1 with the escape quoted", r.code, r.stderr)
	}
}
