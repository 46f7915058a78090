package replicatest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/pgtest"
	"github.com/drawbridge/drawbridge/internal/testbin"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	testbin.Cleanup()
	os.Exit(code)
}

// replica is one running `drawbridge server` process.
type replica struct {
	URL  string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// Kill9 kills the process with SIGKILL and waits for it.
func (r *replica) Kill9() {
	r.cmd.Process.Kill()
	<-r.done
}

func startReplica(t testing.TB, dsn, dir string, n int) *replica {
	t.Helper()
	logPath := filepath.Join(dir, fmt.Sprintf("replica%d.log", n))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testbin.Drawbridge(t), "server", "--db", dsn, "--listen", "127.0.0.1:0")
	cmd.Dir = dir
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &replica{cmd: cmd, log: logPath, done: make(chan struct{})}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 0 && strings.HasPrefix(f[len(f)-1], "http://") {
				select {
				case urls <- f[len(f)-1]:
				default:
				}
			}
		}
	}()
	go func() { cmd.Wait(); logf.Close(); close(r.done) }()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			cmd.Process.Kill()
			<-r.done
		}
	})
	select {
	case r.URL = <-urls:
	case <-r.done:
		b, _ := os.ReadFile(logPath)
		t.Fatalf("replica %d exited: %s", n, b)
	case <-time.After(30 * time.Second):
		t.Fatalf("replica %d did not start in 30s", n)
	}
	return r
}

// cluster is three replicas on one fresh database plus an API client.
type cluster struct {
	replicas []*replica
	dir      string
	dsn      string
	db       *pgxpool.Pool
	client   *http.Client
	token    string
	vms      []string
}

const base = "/subscriptions/" + inventory.SampleSubscription + "/resourceGroups/" + inventory.SampleResourceGroup

// newCluster starts n replicas (the first alone, so it loads the sample
// inventory and writes the bootstrap token, if the build has one), adds
// nVMs Azure VMs, each with a JIT policy on port 22 (and 3389), and
// installs a trigger that records every grant status change, so tests can
// count how often each grant was ended.
func newCluster(t testing.TB, n, nVMs int) *cluster {
	t.Helper()
	c := &cluster{dir: t.TempDir(), dsn: pgtest.NewDatabase(t)}
	c.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	c.replicas = append(c.replicas, startReplica(t, c.dsn, c.dir, 1))
	if b, err := os.ReadFile(filepath.Join(c.dir, "drawbridge.admin-token")); err == nil {
		c.token = strings.TrimSpace(string(b))
	}
	for i := 2; i <= n; i++ {
		c.replicas = append(c.replicas, startReplica(t, c.dsn, c.dir, i))
	}
	var err error
	c.db, err = pgxpool.New(context.Background(), c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.db.Close)
	_, err = c.db.Exec(context.Background(), `
		CREATE TABLE grant_transitions (grant_id TEXT, old_status TEXT, new_status TEXT, reason TEXT, at TIMESTAMPTZ DEFAULT clock_timestamp());
		CREATE FUNCTION record_transition() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.status IS DISTINCT FROM OLD.status THEN
				INSERT INTO grant_transitions (grant_id, old_status, new_status, reason)
				VALUES (NEW.id, OLD.status, NEW.status, convert_from(NEW.body, 'UTF8')::json->>'statusReason');
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER grants_transitions AFTER UPDATE ON grants FOR EACH ROW EXECUTE FUNCTION record_transition();`)
	if err != nil {
		t.Fatal(err)
	}
	c.vms = c.addVMs(t, nVMs)
	return c
}

func (c *cluster) do(method, url string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (c *cluster) addVMs(t testing.TB, n int) []string {
	t.Helper()
	var inv inventory.Inventory
	var ids []string
	for i := range n {
		name := fmt.Sprintf("rep-%03d", i)
		nic := base + "/providers/Microsoft.Network/networkInterfaces/" + name + "-nic"
		nsg := base + "/providers/Microsoft.Network/networkSecurityGroups/" + name + "-nsg"
		id := base + "/providers/Microsoft.Compute/virtualMachines/" + name
		inv.VMs = append(inv.VMs, inventory.VM{ID: id, Name: name,
			Cloud: inventory.Azure, Provider: inventory.ProviderSim, Location: "westeurope", NICs: []string{nic}})
		inv.NICs = append(inv.NICs, inventory.NIC{ID: nic, NSG: nsg, PrivateIPs: []netip.Addr{netip.AddrFrom4([4]byte{10, 9, byte(i / 250), byte(i%250 + 1)})}})
		inv.NSGs = append(inv.NSGs, netrule.NSG{ID: nsg, Name: name + "-nsg", Location: "westeurope", SecurityRules: []netrule.SecurityRule{
			{Name: "ssh", Priority: 300, Direction: netrule.Inbound, Access: netrule.Allow, Protocol: netrule.Tcp,
				SourceAddressPrefix: "Internet", SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "22"}}})
		ids = append(ids, id)
	}
	if code, body, err := c.do("POST", c.replicas[0].URL+"/drawbridge/v1/inventory", inv); err != nil || code != 200 {
		t.Fatalf("inventory: %d %v %s", code, err, body)
	}
	for i, id := range ids {
		policy := map[string]any{"properties": map[string]any{"virtualMachines": []any{map[string]any{"id": id, "ports": []any{
			map[string]any{"number": 22, "protocol": "TCP", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"},
			map[string]any{"number": 3389, "protocol": "*", "allowedSourceAddressPrefix": "*", "maxRequestAccessDuration": "PT3H"},
		}}}}}
		r := c.replicas[i%len(c.replicas)]
		url := r.URL + base + "/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/" + fmt.Sprintf("rep-%03d", i)
		if code, body, err := c.do("PUT", url, policy); err != nil || code != 200 {
			t.Fatalf("policy %d: %d %v %s", i, code, err, body)
		}
	}
	return ids
}

// request asks replica r for access to vm's ports; it returns the grant IDs
// of an accepted (202) request, or the status and body otherwise.
func (c *cluster) request(r *replica, vm string, ports []int, duration, source string) ([]string, int, string, error) {
	code, body, err := c.do("POST", r.URL+"/drawbridge/v1/requests", map[string]any{"vm": vm, "ports": ports, "duration": duration, "source": source})
	if err != nil || code != http.StatusAccepted {
		return nil, code, string(body), err
	}
	var res struct {
		VirtualMachines []struct {
			Ports []struct {
				GrantID string `json:"grantId"`
			} `json:"ports"`
		} `json:"virtualMachines"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, code, string(body), err
	}
	var ids []string
	for _, v := range res.VirtualMachines {
		for _, p := range v.Ports {
			ids = append(ids, p.GrantID)
		}
	}
	return ids, code, "", nil
}

// grantRow is a grant as stored.
type grantRow struct {
	ID, Status, Reason, VMKey string
	Port                      int
	Start, End                time.Time
	EndedAt                   time.Time
}

func (c *cluster) grants(t testing.TB) map[string]grantRow {
	t.Helper()
	rows, err := c.db.Query(context.Background(), `SELECT id, status, vm_key, port, start_time, end_time, body FROM grants`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]grantRow{}
	for rows.Next() {
		var g grantRow
		var start, end int64
		var body []byte
		if err := rows.Scan(&g.ID, &g.Status, &g.VMKey, &g.Port, &start, &end, &body); err != nil {
			t.Fatal(err)
		}
		var b struct {
			StatusReason string    `json:"statusReason"`
			EndedAt      time.Time `json:"endedAt"`
		}
		json.Unmarshal(body, &b)
		g.Reason, g.EndedAt = b.StatusReason, b.EndedAt
		g.Start, g.End = time.Unix(0, start), time.Unix(0, end)
		out[g.ID] = g
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// endings returns, per grant, how many times its status changed away from
// Initiated, and any change that started from an ended status.
func (c *cluster) endings(t testing.TB) (map[string]int, []string) {
	t.Helper()
	rows, err := c.db.Query(context.Background(), `SELECT grant_id, old_status, new_status FROM grant_transitions`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := map[string]int{}
	var bad []string
	for rows.Next() {
		var id, from, to string
		if err := rows.Scan(&id, &from, &to); err != nil {
			t.Fatal(err)
		}
		if from == "Revoked" {
			bad = append(bad, fmt.Sprintf("%s: %s -> %s", id, from, to))
		}
		n[id]++
	}
	return n, bad
}
