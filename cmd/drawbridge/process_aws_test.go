package main

import (
	"bufio"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/cloudsim/ec2sim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/testbin"
)

// startAWSProc starts `drawbridge server` as a real process running the aws
// provider against endpoint, and waits for its URL.
func startAWSProc(t *testing.T, bin, db, endpoint string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "server", "--db", db, "--listen", "127.0.0.1:0", "--aws-region", inventory.SampleAWSRegion,
		"--aws-endpoint", endpoint, "--aws-rules-per-group", "1000")
	dir := filepath.Dir(db)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIDKILL", "AWS_SECRET_ACCESS_KEY=s", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE="+filepath.Join(dir, "none"), "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "none"))
	logf, err := os.OpenFile(db+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
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
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 0 && strings.HasPrefix(f[len(f)-1], "http://") {
				urls <- f[len(f)-1]
			}
		}
	}()
	select {
	case u := <-urls:
		b, err := os.ReadFile(db + ".admin-token")
		if err != nil {
			t.Fatal(err)
		}
		tokensMu.Lock()
		tokens[u] = strings.TrimSpace(string(b))
		tokensMu.Unlock()
		cmd.Args = append(cmd.Args, u) // remember the URL with the command
		return cmd
	case <-time.After(30 * time.Second):
		log, _ := os.ReadFile(db + ".log")
		t.Fatalf("server printed no URL; log:\n%s", log)
	}
	return nil
}

func procURL(c *exec.Cmd) string { return c.Args[len(c.Args)-1] }

var changing = map[string]bool{"CreateSecurityGroup": true, "DeleteSecurityGroup": true, "AuthorizeSecurityGroupIngress": true,
	"RevokeSecurityGroupIngress": true, "ModifyNetworkInterfaceAttribute": true}

// sameAccount reports how the account differs from before ("" if not).
func sameAccount(before, now ec2sim.State) string {
	var diffs []string
	for id, g := range before.Groups {
		if !ec2sim.SameRules(g.Ingress, now.Groups[id].Ingress) {
			diffs = append(diffs, "group "+id)
		}
	}
	for id := range now.Groups {
		if _, ok := before.Groups[id]; !ok {
			diffs = append(diffs, "extra group "+id)
		}
	}
	for id, e := range before.ENIs {
		if strings.Join(e.Groups, ",") != strings.Join(now.ENIs[id].Groups, ",") {
			diffs = append(diffs, "eni "+id)
		}
	}
	return strings.Join(diffs, "; ")
}

// TestKill9MidChangeOnAWS kills the server process with SIGKILL at every
// changing EC2 call of enable+request, and then of disable; a restarted
// server (same database) converges, and after disabling the simulated
// account is exactly as before.
func TestKill9MidChangeOnAWS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs real processes")
	}
	bin := testbin.Drawbridge(t)
	// `inventory sync aws` runs in this process.
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "AKIDKILL", "AWS_SECRET_ACCESS_KEY": "s", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE": none, "AWS_SHARED_CREDENTIALS_FILE": none} {
		t.Setenv(k, v)
	}
	for _, phase := range []string{"enable+request", "disable"} {
		for n := int64(1); ; n++ {
			sim := ec2sim.New(ec2sim.Options{AccessKey: "AKIDKILL", SecretKey: "s", Region: inventory.SampleAWSRegion, AccountID: inventory.SampleAWSAccount})
			sim.Seed(inventory.Sample())
			ts := httptest.NewServer(sim)
			db := filepath.Join(t.TempDir(), "x.db")
			before := sim.Snapshot()
			p := startAWSProc(t, bin, db, ts.URL)
			ok(t, procURL(p), "inventory", "sync", "aws", "--region", inventory.SampleAWSRegion, "--endpoint", ts.URL)
			var calls atomic.Int64
			var killed atomic.Bool
			arm := func() {
				sim.OnRequest(func(action string) {
					if changing[action] && calls.Add(1) == n {
						killed.Store(true)
						_ = p.Process.Kill()
					}
				})
			}
			if phase == "enable+request" {
				arm()
			}
			_ = cli(t, procURL(p), "policy", "set", "bastion", "--port", "22", "--max-duration", "PT3H", "--allowed-source", "198.18.0.0/15")
			_ = cli(t, procURL(p), "request", "bastion", "--port", "22", "--duration", "1h", "--source", "198.18.0.9")
			if phase == "disable" {
				arm()
				_ = cli(t, procURL(p), "policy", "delete", "bastion")
			}
			sim.OnRequest(nil)
			if !killed.Load() {
				t.Logf("%s: %d changing calls, a kill at each", phase, n-1)
				ts.Close()
				break
			}
			_ = p.Wait()
			// Restart on the same database: the start-up reconcile finishes
			// the change, then disabling restores the account.
			q := startAWSProc(t, bin, db, ts.URL)
			deadline := time.Now().Add(30 * time.Second)
			for phase == "enable+request" {
				if g, _ := sim.Group("sg-0a1b2c3d4e5f60001"); len(g.Ingress) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s killed at call %d: the restarted server did not finish enabling", phase, n)
				}
				time.Sleep(50 * time.Millisecond)
			}
			_ = cli(t, procURL(q), "policy", "delete", "bastion")
			for {
				d := sameAccount(before, sim.Snapshot())
				if d == "" {
					break
				}
				if time.Now().After(deadline) {
					log, _ := os.ReadFile(db + ".log")
					t.Fatalf("%s killed at call %d: after restart and disable the account differs: %s\nlog:\n%s", phase, n, d, log)
				}
				time.Sleep(50 * time.Millisecond)
			}
			_ = q.Process.Kill()
			_ = q.Wait()
			ts.Close()
		}
	}
}
