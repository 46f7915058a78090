package armsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/network/armnetwork/v7"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

var ctx = context.Background()

const sub = "00000000-0000-0000-0000-0000000000aa"

func rgID(rg string) string { return "/subscriptions/" + sub + "/resourceGroups/" + rg }

func start(t *testing.T, o Options) *Server {
	t.Helper()
	s, err := Start(o, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func nsgs(n int) inventory.Inventory {
	var inv inventory.Inventory
	for i := range n {
		id := fmt.Sprintf("%s/providers/Microsoft.Network/networkSecurityGroups/nsg-%d", rgID("rg1"), i)
		inv.NSGs = append(inv.NSGs, netrule.NSG{ID: id, Name: fmt.Sprintf("nsg-%d", i), SecurityRules: []netrule.SecurityRule{
			{Name: "AllowSSH", Priority: 200, Direction: netrule.Inbound, Access: netrule.Allow, Protocol: netrule.Tcp,
				SourceAddressPrefix: "Internet", SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "22"}}})
	}
	return inv
}

func sdkRules(t *testing.T, s *Server) *armnetwork.SecurityRulesClient {
	c, err := armnetwork.NewSecurityRulesClient(sub, StaticToken("t"), s.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestListAllFollowsNextLink(t *testing.T) {
	s := start(t, Options{PageSize: 2})
	s.Load(nsgs(5))
	c, err := armnetwork.NewSecurityGroupsClient(sub, StaticToken("t"), s.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	pages := 0
	for p := c.NewListAllPager(nil); p.More(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, n := range page.Value {
			names = append(names, *n.Name)
			if got := len(n.Properties.SecurityRules); got != 1 || *n.Properties.SecurityRules[0].Properties.Priority != 200 {
				t.Fatalf("%s: rules %v", *n.Name, n.Properties.SecurityRules)
			}
			if len(n.Properties.DefaultSecurityRules) != 6 || n.Etag == nil {
				t.Fatalf("%s: want 6 default rules and an etag", *n.Name)
			}
		}
	}
	if pages != 3 || len(names) != 5 {
		t.Fatalf("got %d pages, names %v; want 3 pages of 5 NSGs", pages, names)
	}
}

func rule(prio int32, port string) armnetwork.SecurityRule {
	return armnetwork.SecurityRule{Properties: &armnetwork.SecurityRulePropertiesFormat{
		Priority: to.Ptr(prio), Direction: to.Ptr(armnetwork.SecurityRuleDirectionInbound), Access: to.Ptr(armnetwork.SecurityRuleAccessDeny),
		Protocol: to.Ptr(armnetwork.SecurityRuleProtocolTCP), SourceAddressPrefix: to.Ptr("*"), SourcePortRange: to.Ptr("*"),
		DestinationAddressPrefix: to.Ptr("10.0.0.4"), DestinationPortRange: to.Ptr(port)}}
}

func TestRuleCreateDeleteAsync(t *testing.T) {
	s := start(t, Options{AsyncPolls: 2})
	s.Load(nsgs(1))
	c := sdkRules(t, s)
	p, err := c.BeginCreateOrUpdate(ctx, "rg1", "nsg-0", "deny22", rule(210, "22"), nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.PollUntilDone(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *res.Properties.ProvisioningState != armnetwork.ProvisioningStateSucceeded || *res.Properties.Priority != 210 {
		t.Fatalf("final rule %+v", res.Properties)
	}
	polls := 0
	for _, c := range s.Calls() {
		if strings.Contains(c.Path, "/operations/") {
			polls++
		}
	}
	if polls != 3 {
		t.Fatalf("operation polled %d times, want 3 (2 InProgress, 1 Succeeded)", polls)
	}
	n, _ := s.NSG(rgID("rg1") + "/providers/Microsoft.Network/networkSecurityGroups/nsg-0")
	if len(n.SecurityRules) != 2 || n.SecurityRules[1].Name != "deny22" {
		t.Fatalf("NSG rules after create: %+v", n.SecurityRules)
	}
	dp, err := c.BeginDelete(ctx, "rg1", "nsg-0", "deny22", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dp.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	n, _ = s.NSG(n.ID)
	if len(n.SecurityRules) != 1 {
		t.Fatalf("NSG rules after delete: %+v", n.SecurityRules)
	}
	// Deleting it again succeeds (204), as ARM does.
	dp, err = c.BeginDelete(ctx, "rg1", "nsg-0", "deny22", nil)
	if err == nil {
		_, err = dp.PollUntilDone(ctx, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestSamePriorityIsAConflict(t *testing.T) {
	s := start(t, Options{})
	s.Load(nsgs(1))
	_, err := sdkRules(t, s).BeginCreateOrUpdate(ctx, "rg1", "nsg-0", "clash", rule(200, "23"), nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 400 || re.ErrorCode != "SecurityRuleConflict" {
		t.Fatalf("err = %v, want 400 SecurityRuleConflict", err)
	}
}

func TestFirewallIfMatch(t *testing.T) {
	s := start(t, Options{})
	fwID := rgID("rg1") + "/providers/Microsoft.Network/azureFirewalls/fw1"
	s.Load(inventory.Inventory{Firewalls: []inventory.Firewall{{ID: fwID}}})
	c, err := armnetwork.NewAzureFirewallsClient(sub, StaticToken("t"), s.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "rg1", "fw1", nil)
	if err != nil {
		t.Fatal(err)
	}
	fw := got.AzureFirewall
	fw.Properties.NatRuleCollections = []*armnetwork.AzureFirewallNatRuleCollection{{Name: to.Ptr("jit"), Properties: &armnetwork.AzureFirewallNatRuleCollectionProperties{Priority: to.Ptr[int32](100)}}}
	stale := *fw.Etag
	p, err := c.BeginCreateOrUpdate(ctx, "rg1", "fw1", fw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.PollUntilDone(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// A writer that read before that change must not overwrite it.
	req, _ := http.NewRequest(http.MethodPut, s.URL()+fwID+"?api-version=2024-05-01", strings.NewReader(`{"properties":{}}`))
	req.Header.Set("Authorization", "Bearer t")
	req.Header.Set("If-Match", stale)
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPreconditionFailed || !strings.Contains(string(body), `"code":"PreconditionFailed"`) {
		t.Fatalf("stale If-Match: %d %s", resp.StatusCode, body)
	}
}

func TestEnvelopeForMissingAPIVersionAndToken(t *testing.T) {
	s := start(t, Options{})
	for _, tc := range []struct {
		auth, query string
		status      int
		code        string
	}{
		{"", "?api-version=2024-05-01", 401, "AuthenticationFailed"},
		{"Bearer t", "", 400, "MissingApiVersionParameter"},
		{"Bearer t", "?api-version=2024-05-01", 404, "NotFound"},
	} {
		req, _ := http.NewRequest(http.MethodGet, s.URL()+rgID("rg1")+"/providers/Microsoft.Network/networkSecurityGroups/none"+tc.query, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(body), `"code":"`+tc.code+`"`) {
			t.Errorf("%q %q: %d %s; want %d %s", tc.auth, tc.query, resp.StatusCode, body, tc.status, tc.code)
		}
	}
}

// TestFaultsAreAbsorbedBySDKRetries: with throttling, 500s and dropped
// connections (some after the write applied), every write still lands
// exactly once, through the SDK's own retry policy.
func TestFaultsAreAbsorbedBySDKRetries(t *testing.T) {
	s := start(t, Options{})
	s.Load(nsgs(1))
	s.SetFaults(Faults{ThrottleRate: 0.2, ErrorRate: 0.1, DropRate: 0.05, DropAfterRate: 0.1, Seed: 7})
	c := sdkRules(t, s)
	for i := range 20 {
		p, err := c.BeginCreateOrUpdate(ctx, "rg1", "nsg-0", fmt.Sprintf("r%d", i), rule(int32(300+i), "22"), nil)
		if err == nil {
			_, err = p.PollUntilDone(ctx, nil)
		}
		if err != nil {
			t.Fatalf("rule %d: %v", i, err)
		}
	}
	n, _ := s.NSG(rgID("rg1") + "/providers/Microsoft.Network/networkSecurityGroups/nsg-0")
	if len(n.SecurityRules) != 21 {
		t.Fatalf("%d rules, want 21", len(n.SecurityRules))
	}
	fc := s.FaultCounts()
	if fc.Throttled == 0 || fc.Errors == 0 || fc.Dropped+fc.DroppedAfter == 0 {
		t.Fatalf("faults not exercised: %+v", fc)
	}
}

func TestLoadServesNICsSubnetsVMs(t *testing.T) {
	s := start(t, Options{PageSize: 1})
	inv := inventory.Sample()
	s.Load(inv)
	c, err := armnetwork.NewInterfacesClient(inventory.SampleSubscription, StaticToken("t"), s.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	nic, err := c.Get(ctx, "demo-rg", "web-01-nic", nil)
	if err != nil {
		t.Fatal(err)
	}
	ipc := nic.Properties.IPConfigurations[0].Properties
	if *ipc.PrivateIPAddress != "10.0.1.4" || !strings.HasSuffix(*ipc.Subnet.ID, "/subnets/web") || !strings.HasSuffix(*nic.Properties.NetworkSecurityGroup.ID, "web-01-nsg") {
		t.Fatalf("nic %+v", ipc)
	}
	pip, err := armnetwork.NewPublicIPAddressesClient(inventory.SampleSubscription, StaticToken("t"), s.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	pr, err := pip.Get(ctx, "demo-rg", lastSeg(*ipc.PublicIPAddress.ID), nil)
	if err != nil || netip.MustParseAddr(*pr.Properties.IPAddress) != netip.MustParseAddr("198.18.0.10") {
		t.Fatalf("public IP: %v %v", pr, err)
	}
	vn, err := armnetwork.NewVirtualNetworksClient(inventory.SampleSubscription, StaticToken("t"), s.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	v, err := vn.Get(ctx, "demo-rg", "demo-vnet", nil)
	if err != nil || len(v.Properties.Subnets) != 3 {
		t.Fatalf("vnet: %v %v", v, err)
	}
}

// TestWriteThrottle: the token bucket counts down in
// x-ms-ratelimit-remaining-subscription-writes and answers 429 with a
// Retry-After once it is empty.
func TestWriteThrottle(t *testing.T) {
	s := start(t, Options{})
	s.Load(nsgs(1))
	s.SetFaults(Faults{WritesPerSecond: 0.5, WriteBurst: 2})
	put := func(name string, prio int) *http.Response {
		body := fmt.Sprintf(`{"properties":{"priority":%d,"direction":"Inbound","access":"Deny","protocol":"Tcp","sourceAddressPrefix":"*","sourcePortRange":"*","destinationAddressPrefix":"*","destinationPortRange":"22"}}`, prio)
		req, _ := http.NewRequest(http.MethodPut, s.URL()+rgID("rg1")+"/providers/Microsoft.Network/networkSecurityGroups/nsg-0/securityRules/"+name+"?api-version=2024-05-01", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer t")
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for i, want := range []string{"1", "0"} {
		r := put(fmt.Sprintf("r%d", i), 300+i)
		if r.StatusCode != http.StatusCreated || r.Header.Get("x-ms-ratelimit-remaining-subscription-writes") != want {
			t.Fatalf("write %d: %d, remaining %q, want 201 and %s", i, r.StatusCode, r.Header.Get("x-ms-ratelimit-remaining-subscription-writes"), want)
		}
	}
	r := put("r2", 302)
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "2" {
		t.Fatalf("third write: %d Retry-After %q, want 429 and 2 (seconds to the next token)", r.StatusCode, r.Header.Get("Retry-After"))
	}
}
