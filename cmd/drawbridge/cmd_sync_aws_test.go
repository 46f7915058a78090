package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/client"
	"github.com/drawbridge/drawbridge/internal/cloudsim/ec2sim"
	"github.com/drawbridge/drawbridge/internal/inventory"
	awsprov "github.com/drawbridge/drawbridge/internal/provider/aws"
	"github.com/drawbridge/drawbridge/internal/server"
)

// startAWS starts the EC2 simulator with the sample's AWS half and a
// server running the aws provider against it, credentials from the
// environment as in production.
func startAWS(t testing.TB, retry awsprov.RetryOptions, mods ...func(*server.Config)) (*ec2sim.Server, string, *server.Server) {
	t.Helper()
	sim := ec2sim.New(ec2sim.Options{AccessKey: "AKIDE2E", SecretKey: "any-secret", Region: inventory.SampleAWSRegion, AccountID: inventory.SampleAWSAccount})
	sim.Seed(inventory.Sample())
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	dir := t.TempDir()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDE2E")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "any-secret")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg := server.Config{
		Listen: "127.0.0.1:0", DBPath: filepath.Join(dir, "drawbridge.db"), SampleInventory: true,
		AWS: &awsprov.Config{Region: inventory.SampleAWSRegion, Endpoint: ts.URL, Retry: retry},
	}
	for _, m := range mods {
		m(&cfg)
	}
	srv, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	tokensMu.Lock()
	tokens[srv.URL] = srv.AdminToken
	tokensMu.Unlock()
	return sim, ts.URL, srv
}

// TestSyncAWSThenJITEndToEnd: `inventory sync aws` discovers the simulated
// account; enabling JIT on a discovered instance revokes SSH from its
// group; a request attaches a tagged group for the requester; revoking it
// deletes the group; disabling leaves the account exactly as it was.
func TestSyncAWSThenJITEndToEnd(t *testing.T) {
	sim, endpoint, srv := startAWS(t, awsprov.RetryOptions{MaxBackoff: 5 * time.Millisecond})
	u := srv.URL
	out := ok(t, u, "inventory", "sync", "aws", "--region", inventory.SampleAWSRegion, "--endpoint", endpoint)
	if !strings.Contains(out, "3 VMs") || !strings.Contains(out, "5 security groups") {
		t.Fatalf("sync output: %s", out)
	}
	before := sim.Snapshot()
	ok(t, u, "policy", "set", "bastion", "--port", "22", "--max-duration", "PT3H", "--allowed-source", "198.18.0.0/15")
	if g, _ := sim.Group("sg-0a1b2c3d4e5f60001"); len(g.Ingress) != 0 {
		t.Fatalf("SSH still open in ssh-open after enable: %+v", g.Ingress)
	}
	req := decodeJSON[api.RequestResource](t, ok(t, u, "request", "bastion", "--port", "22", "--duration", "1h",
		"--source", "198.18.0.9", "--justification", "e2e", "-o", "json"))
	grant := req.VirtualMachines[0].Ports[0]
	eni, _ := sim.ENI("eni-0a1b2c3d4e5f60001")
	if len(eni.Groups) != 3 {
		t.Fatalf("primary ENI groups after the request: %v", eni.Groups)
	}
	jg, _ := sim.Group(eni.Groups[2])
	if len(jg.Ingress) != 1 || jg.Ingress[0].CIDRv4 != "198.18.0.9/32" || jg.Ingress[0].From != 22 || !hasTag(jg.Tags, awsprov.TagGrant, grant.GrantID) {
		t.Fatalf("grant group %+v", jg)
	}
	ok(t, u, "revoke", grant.GrantID)
	if _, still := sim.Group(jg.ID); still {
		t.Fatal("the grant's group survives the revoke")
	}
	ok(t, u, "policy", "delete", "bastion")
	after := sim.Snapshot()
	for id, g := range before.Groups {
		if !ec2sim.SameRules(g.Ingress, after.Groups[id].Ingress) {
			t.Errorf("group %s: %+v, before %+v", id, after.Groups[id].Ingress, g.Ingress)
		}
	}
	if len(after.Groups) != len(before.Groups) {
		t.Errorf("%d groups after, %d before", len(after.Groups), len(before.Groups))
	}
	if e, _ := sim.ENI("eni-0a1b2c3d4e5f60001"); strings.Join(e.Groups, ",") != strings.Join(before.ENIs["eni-0a1b2c3d4e5f60001"].Groups, ",") {
		t.Errorf("ENI groups %v, before %v", e.Groups, before.ENIs["eni-0a1b2c3d4e5f60001"].Groups)
	}
}

func hasTag(ts []ec2sim.Tag, k, v string) bool {
	for _, t := range ts {
		if t.Key == k && t.Value == v {
			return true
		}
	}
	return false
}

// TestServerSyncsAWSPeriodically: with --aws-sync-interval the server
// discovers the account itself, and picks up an instance added later.
func TestServerSyncsAWSPeriodically(t *testing.T) {
	sim, _, srv := startAWS(t, awsprov.RetryOptions{MaxBackoff: 5 * time.Millisecond}, func(c *server.Config) { c.AWS.SyncInterval = 50 * time.Millisecond })
	sim.PutENI(ec2sim.ENI{ID: "eni-0late", VpcID: "vpc-0a1b2c3d4e5f60001", InstanceID: "i-0late", Groups: []string{"sg-0a1b2c3d4e5f60002"}})
	sim.PutInstance(ec2sim.Instance{ID: "i-0late", ENIs: []string{"eni-0late"}, Tags: []ec2sim.Tag{{Key: "Name", Value: "late"}}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := ok(t, srv.URL, "vm", "list", "-o", "json")
		for _, vm := range decodeJSON[[]api.VMSummary](t, out) {
			if vm.Name == "late" && vm.Provider == "aws" && vm.Cloud == "aws" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the late instance was never synced:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDriftIsRevokedWithinOneResyncAndNotified: SSH re-added to the
// bastion's group while JIT guards it is revoked again within one resync
// interval, and a "drift" webhook event goes out.
func TestDriftIsRevokedWithinOneResyncAndNotified(t *testing.T) {
	got := make(chan map[string]any, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p map[string]any
		if json.NewDecoder(r.Body).Decode(&p) == nil {
			got <- p
		}
	}))
	defer hook.Close()
	sim, endpoint, srv := startAWS(t, awsprov.RetryOptions{MaxBackoff: 5 * time.Millisecond}, func(c *server.Config) {
		c.ResyncInterval = 200 * time.Millisecond
		c.Webhook.URLs, c.Webhook.Secret = []string{hook.URL}, []byte("k")
	})
	u := srv.URL
	ok(t, u, "inventory", "sync", "aws", "--region", inventory.SampleAWSRegion, "--endpoint", endpoint)
	ok(t, u, "policy", "set", "bastion", "--port", "22", "--max-duration", "PT3H")
	sim.AddIngress("sg-0a1b2c3d4e5f60001", ec2sim.Rule{Protocol: "tcp", From: 22, To: 22, CIDRv4: "0.0.0.0/0", Description: "re-added by IaC"})
	added := time.Now()
	for {
		g, _ := sim.Group("sg-0a1b2c3d4e5f60001")
		if len(g.Ingress) == 0 {
			break
		}
		if time.Since(added) > 10*time.Second {
			t.Fatalf("the re-added rule survives: %+v", g.Ingress)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("drift revoked %v after it was re-added (resync interval 200ms)", time.Since(added).Round(time.Millisecond))
	deadline := time.After(10 * time.Second)
	for {
		select {
		case p := <-got:
			if p["event"] == "drift" {
				if p["port"] != float64(22) || !strings.Contains(p["detail"].(string), "sg-0a1b2c3d4e5f60001") {
					t.Fatalf("drift event %v", p)
				}
				return
			}
		case <-deadline:
			t.Fatal("no drift webhook event")
		}
	}
}

// TestFullENIIsAClear409: the sample's "crowded" instance has five groups
// on its ENI; a request is refused with a 409 naming the ENI, and the
// account does not change.
func TestFullENIIsAClear409(t *testing.T) {
	sim, endpoint, srv := startAWS(t, awsprov.RetryOptions{MaxBackoff: 5 * time.Millisecond})
	u := srv.URL
	ok(t, u, "inventory", "sync", "aws", "--region", inventory.SampleAWSRegion, "--endpoint", endpoint)
	ok(t, u, "policy", "set", "crowded", "--port", "22", "--max-duration", "PT3H")
	before := sim.Snapshot()
	r := cli(t, u, "request", "crowded", "--port", "22", "--duration", "1h", "--source", "198.18.0.9")
	if r.code == 0 || !strings.Contains(r.stderr, "eni-0a1b2c3d4e5f60003") || !strings.Contains(r.stderr, "no free security group slot") {
		t.Fatalf("request on a full ENI: exit %d, stderr %q", r.code, r.stderr)
	}
	c, err := client.New(u, srv.AdminToken)
	if err != nil {
		t.Fatal(err)
	}
	vmID := inventory.AWSInstanceID(inventory.SampleAWSAccount, inventory.SampleAWSRegion, "i-0a1b2c3d4e5f60003")
	_, err = c.Request(context.Background(), api.SimpleRequest{VM: vmID, Ports: []int{22}, Duration: "PT1H", Source: "198.18.0.9"})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.StatusCode != 409 || ce.Target != "virtualMachines[0].id" {
		t.Fatalf("API answer to a request on a full ENI: %#v", err)
	}
	if d := sameAccount(before, sim.Snapshot()); d != "" {
		t.Fatalf("the refused request changed the account: %s", d)
	}
}
