package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/provider/providertest"
	"github.com/drawbridge/drawbridge/internal/testbin"
)

// startLine starts cmd with stderr to logPath and returns the last field of
// the first stdout line whose last field starts with prefix (a URL).
func startLine(t *testing.T, cmd *exec.Cmd, logPath, prefix string) string {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			for _, f := range strings.Fields(sc.Text()) {
				if strings.HasPrefix(f, prefix) {
					select {
					case lines <- f:
					default:
					}
				}
			}
		}
	}()
	select {
	case u := <-lines:
		return u
	case <-time.After(30 * time.Second):
		log, _ := os.ReadFile(logPath)
		t.Fatalf("%s printed no %s URL; log:\n%s", cmd.Args[1], prefix, log)
	}
	return ""
}

// armWatch reads the simulator's state over its own HTTPS API.
type armWatch struct {
	t   *testing.T
	url string
	c   *http.Client
}

func (w armWatch) get(id string) map[string]any {
	w.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, w.url+id+"?api-version=2024-05-01", nil)
	req.Header.Set("Authorization", "Bearer watch")
	resp, err := w.c.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || resp.StatusCode != 200 {
		w.t.Fatalf("GET %s: %d %v", id, resp.StatusCode, err)
	}
	return d
}

// names lists the names of the items of a property list of resource id.
func (w armWatch) names(id, list string) []string {
	var out []string
	items, _ := w.get(id)["properties"].(map[string]any)[list].([]any)
	for _, it := range items {
		out = append(out, it.(map[string]any)["name"].(string))
	}
	return out
}

func hasPrefix(ss []string, p string) bool {
	for _, s := range ss {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// state is (DNAT collection present, NSG allow present, NSG deny present).
func (w armWatch) state() (dnat, allow, deny bool) {
	fnsg := strings.Replace(providertest.FirewallID, "azureFirewalls/conf-fw", "networkSecurityGroups/f-nsg", 1)
	rules := w.names(fnsg, "securityRules")
	return hasPrefix(w.names(providertest.FirewallID, "natRuleCollections"), "drawbridge-jit"),
		hasPrefix(rules, "drawbridge-jit-allow-"), hasPrefix(rules, "drawbridge-jit-deny-")
}

func (w armWatch) until(what string, d time.Duration, cond func(dnat, allow, deny bool) bool) {
	w.t.Helper()
	deadline := time.Now().Add(d)
	for {
		if cond(w.state()) {
			return
		}
		if time.Now().After(deadline) {
			dn, al, de := w.state()
			w.t.Fatalf("%s: not reached in %s (dnat %v, allow %v, deny %v)", what, d, dn, al, de)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKill9MidChangeOnAzure runs `drawbridge cloudsim azure` (every answer
// slowed, so each change is in flight for a while) and `drawbridge server
// --azure` as real processes, and kills the server with SIGKILL twice on a
// VM behind a classic Azure Firewall: right after a grant's DNAT rule
// landed and before its NSG allow rule did, and right after the expiry
// removed the DNAT rule and before it removed the allow rule. Each time a
// restarted server (same database) converges: the grant's DNAT and allow
// rules are gone soon after its end and JIT's deny rules stay.
func TestKill9MidChangeOnAzure(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs real processes")
	}
	bin := testbin.Drawbridge(t)
	dir := t.TempDir()
	invFile, caFile, db := filepath.Join(dir, "inv.json"), filepath.Join(dir, "ca.pem"), filepath.Join(dir, "x.db")
	b, _ := json.Marshal(providertest.Inventory())
	if err := os.WriteFile(invFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	armURL := startLine(t, exec.Command(bin, "cloudsim", "azure", "--listen", "127.0.0.1:0", "--ca-file", caFile, "-f", invFile,
		"--slow-rate", "1", "--slow", "150ms"), filepath.Join(dir, "armsim.log"), "https://")
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	w := armWatch{t: t, url: armURL, c: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}}
	server := func() (*exec.Cmd, string) {
		cmd := exec.Command(bin, "server", "--db", db, "--listen", "127.0.0.1:0", "--azure", "--arm-endpoint", armURL, "--arm-ca-file", caFile)
		cmd.Env = append(os.Environ(), armTokenEnv+"=kill9")
		u := startLine(t, cmd, db+".log", "http://")
		b, err := os.ReadFile(db + ".admin-token")
		if err != nil {
			t.Fatal(err)
		}
		tokensMu.Lock()
		tokens[u] = strings.TrimSpace(string(b))
		tokensMu.Unlock()
		return cmd, u
	}
	kill := func(c *exec.Cmd) {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
	p, url := server()
	// The sync runs as its own process: it reads the ARM token from the
	// environment, which the in-process CLI does not see.
	sync := exec.Command(bin, "--server", url, "inventory", "sync", "azure", "--subscription", "00000000-0000-0000-0000-00000000c0f0",
		"--arm-endpoint", armURL, "--arm-ca-file", caFile)
	sync.Env = append(os.Environ(), armTokenEnv+"=kill9", "DRAWBRIDGE_TOKEN="+tokenFor(url))
	if out, err := sync.CombinedOutput(); err != nil {
		t.Fatalf("inventory sync azure: %v\n%s", err, out)
	}
	ok(t, url, "policy", "set", "vm-f", "--port", "22", "--max-duration", "PT3H", "--allowed-source", "198.51.100.0/24")
	w.until("enable", 30*time.Second, func(dnat, allow, deny bool) bool { return deny && !dnat && !allow })

	// 1: killed between the grant's DNAT rule and its NSG allow rule.
	const grant = 8 * time.Second
	end := time.Now().Add(grant)
	go func() {
		_ = cli(t, url, "request", "vm-f", "--port", "22", "--duration", grant.String(), "--source", "198.51.100.7")
	}()
	w.until("grant's DNAT rule", 30*time.Second, func(dnat, allow, deny bool) bool { return dnat })
	kill(p)
	if _, allow, _ := w.state(); allow {
		t.Log("the NSG allow rule landed before the kill; the kill still came mid-reconcile")
	}
	p, url = server()
	w.until("restarted server closes the grant after its end", time.Until(end)+20*time.Second, func(dnat, allow, deny bool) bool {
		return time.Now().After(end) && !dnat && !allow
	})
	if _, _, deny := w.state(); !deny {
		t.Fatal("JIT's deny rule is gone after the restart")
	}

	// 2: killed between the expiry's DNAT removal and its allow removal.
	end = time.Now().Add(grant)
	ok(t, url, "request", "vm-f", "--port", "22", "--duration", grant.String(), "--source", "198.51.100.7")
	w.until("second grant open", 30*time.Second, func(dnat, allow, deny bool) bool { return dnat && allow })
	w.until("expiry removes the DNAT rule", time.Until(end)+20*time.Second, func(dnat, allow, deny bool) bool { return !dnat })
	_, allowAtKill, _ := w.state()
	kill(p)
	if !allowAtKill {
		t.Log("the allow rule was removed before the kill")
	}
	_, _ = server()
	w.until("restarted server finishes the expiry", 20*time.Second, func(dnat, allow, deny bool) bool { return !dnat && !allow && deny })
}
