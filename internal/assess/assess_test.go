package assess

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

const (
	azPrefix = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/demo-rg/providers/"
	webVM    = azPrefix + "Microsoft.Compute/virtualMachines/web-01"
	winVM    = azPrefix + "Microsoft.Compute/virtualMachines/win-01"
	dbVM     = azPrefix + "Microsoft.Compute/virtualMachines/db-01"
	fwVM     = azPrefix + "Microsoft.Compute/virtualMachines/fw-01"
	appVM    = azPrefix + "Microsoft.Compute/virtualMachines/app-01"
	awsPref  = "/subscriptions/aws-111122223333/resourceGroups/us-east-1/providers/AWS.EC2/instances/"
	bastion  = awsPref + "i-0a1b2c3d4e5f60001"
	worker   = awsPref + "i-0a1b2c3d4e5f60002"
	crowded  = awsPref + "i-0a1b2c3d4e5f60003"
	sshSG    = "sg-0a1b2c3d4e5f60001"
)

// summary renders a result as one line: status, reason or exposures
// ("port:group/rule/source"), so expectations can be written out plainly.
func summary(r Result) string {
	switch r.Status {
	case NotApplicable:
		return "NotApplicable " + string(r.Reason)
	case Healthy:
		s := "Healthy"
		for _, e := range r.StillReachable {
			s += fmt.Sprintf(" still:%d", e.Port)
		}
		return s
	}
	parts := []string{"Unhealthy"}
	for _, e := range r.Exposures {
		parts = append(parts, fmt.Sprintf("%d:%s/%s/%s", e.Port, shortID(e.Rule.Group), e.Rule.Rule, e.Rule.Source))
	}
	return strings.Join(parts, " ")
}

func shortID(id string) string { return id[strings.LastIndex(id, "/")+1:] }

func assessOrFail(t *testing.T, in Input) Report {
	t.Helper()
	rep, err := Assess(in)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestAssessSample(t *testing.T) {
	rep := assessOrFail(t, Input{Inventory: inventory.Sample()})
	want := map[string]string{
		webVM:   "Unhealthy 22:web-01-nsg/AllowSSHFromInternet/Internet",
		winVM:   "Unhealthy 3389:win-01-nsg/AllowRDPFromCorp/203.0.113.0/24",
		dbVM:    "NotApplicable NoNetworkSecurityGroup",
		fwVM:    "NotApplicable FirewallManagerPolicy",
		appVM:   "Healthy",
		bastion: "Unhealthy 22:" + sshSG + "/IpPermissions[0]/0.0.0.0/0",
		worker:  "Healthy",
		crowded: "Unhealthy 22:" + sshSG + "/IpPermissions[0]/0.0.0.0/0",
	}
	if len(rep.Results) != len(want) {
		t.Fatalf("results = %d, want %d", len(rep.Results), len(want))
	}
	for _, r := range rep.Results {
		if got := summary(r); got != want[r.ID] {
			t.Errorf("%s:\n  got  %s\n  want %s", shortID(r.ID), got, want[r.ID])
		}
	}
	if rep.Summary != (Summary{Healthy: 2, Unhealthy: 4, NotApplicable: 2}) {
		t.Errorf("summary = %+v", rep.Summary)
	}
	if rep.Recommendation.Title != "Management ports of virtual machines should be protected with just-in-time network access control" || rep.Recommendation.Severity != "High" {
		t.Errorf("recommendation = %+v", rep.Recommendation)
	}
	if !reflect.DeepEqual(rep.ManagementPorts, []int{22, 3389, 5985, 5986}) {
		t.Errorf("ports = %v", rep.ManagementPorts)
	}
	// The exposure carries where and from what.
	web := rep.Results[0].Exposures[0]
	if web.Interface != azPrefix+"Microsoft.Network/networkInterfaces/web-01-nic" || web.Address != netip.MustParseAddr("10.0.1.4") ||
		web.ExampleSource != netip.MustParseAddr("1.0.0.0") || web.Rule.Priority != 1000 || web.Protocol != netrule.Tcp {
		t.Errorf("web-01 exposure = %+v", web)
	}
	if rep.Results[1].Exposures[0].ExampleSource != netip.MustParseAddr("203.0.113.0") {
		t.Errorf("win-01 example source = %s", rep.Results[1].Exposures[0].ExampleSource)
	}
	if !strings.Contains(rep.Results[3].Detail, "demo-fw") {
		t.Errorf("fw-01 detail = %q", rep.Results[3].Detail)
	}
}

func TestAssessWithPolicies(t *testing.T) {
	in := Input{Inventory: inventory.Sample(), Policies: map[string][]PolicyPort{
		inventory.Key(webVM): {{Number: 22, Protocol: netrule.Tcp}},
		// A policy that guards the wrong port leaves the VM unhealthy.
		inventory.Key(winVM): {{Number: 22, Protocol: netrule.Any}},
		// Keys in the caller's spelling are found too.
		bastion: {{Number: 22, Protocol: netrule.Any}},
		// UDP does not guard the TCP exposure.
		inventory.Key(crowded): {{Number: 22, Protocol: netrule.Udp}},
		inventory.Key(worker):  {{Number: 22, Protocol: netrule.Tcp}},
	}}
	rep := assessOrFail(t, in)
	want := []string{
		// The user's allow rule keeps priority over JIT's deny rule (the
		// seed), so the guarded port is still reachable: a warning.
		"Healthy still:22",
		"Unhealthy 3389:win-01-nsg/AllowRDPFromCorp/203.0.113.0/24",
		"NotApplicable NoNetworkSecurityGroup",
		"NotApplicable FirewallManagerPolicy",
		"Healthy",
		"Healthy still:22",
		"Healthy",
		"Unhealthy 22:" + sshSG + "/IpPermissions[0]/0.0.0.0/0",
	}
	for i, r := range rep.Results {
		if got := summary(r); got != want[i] {
			t.Errorf("%s:\n  got  %s\n  want %s", shortID(r.ID), got, want[i])
		}
	}
}

func TestAssessCases(t *testing.T) {
	hostID := "/subscriptions/onprem/resourceGroups/rack-1/providers/Drawbridge.Hosts/hosts/build-01"
	tests := []struct {
		name string
		mod  func(*Input)
		vm   string
		want string
	}{
		{"classic deployment", func(in *Input) { in.Inventory.VMs[0].Classic = true }, webVM, "NotApplicable ClassicDeployment"},
		{"JIT off for the resource group", func(in *Input) {
			in.Inventory.Settings = []inventory.Setting{{Scope: "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/DEMO-RG", JITDisabled: true}}
		}, webVM, "NotApplicable JITDisabledBySetting"},
		{"JIT off for the subscription", func(in *Input) {
			in.Inventory.Settings = []inventory.Setting{{Scope: "/subscriptions/aws-111122223333", JITDisabled: true}}
		}, bastion, "NotApplicable JITDisabledBySetting"},
		{"a setting for another scope changes nothing", func(in *Input) {
			in.Inventory.Settings = []inventory.Setting{{Scope: "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/demo", JITDisabled: true}}
		}, webVM, "Unhealthy 22:web-01-nsg/AllowSSHFromInternet/Internet"},
		{"a setting with JIT on changes nothing", func(in *Input) {
			in.Inventory.Settings = []inventory.Setting{{Scope: "/subscriptions/aws-111122223333"}}
		}, bastion, "Unhealthy 22:" + sshSG + "/IpPermissions[0]/0.0.0.0/0"},
		{"provider not running here", func(in *Input) { in.Inventory.VMs[0].Provider = inventory.ProviderAzure }, webVM, "NotApplicable ProviderCannotEnforce"},
		{"provider that cannot enforce on the cloud", func(in *Input) { in.Inventory.VMs[0].Provider = inventory.ProviderNftables }, webVM, "NotApplicable ProviderCannotEnforce"},
		{"provider running when listed", func(in *Input) {
			in.Inventory.VMs[0].Provider = inventory.ProviderAzure
			in.Providers = []string{"azure"}
		}, webVM, "Unhealthy 22:web-01-nsg/AllowSSHFromInternet/Internet"},
		{"references compare case-insensitively", func(in *Input) {
			in.Inventory.NICs[0].NSG = strings.ToUpper(in.Inventory.NICs[0].NSG)
			in.Inventory.VMs[0].NICs[0] = strings.ToUpper(in.Inventory.VMs[0].NICs[0])
		}, webVM, "Unhealthy 22:web-01-nsg/AllowSSHFromInternet/Internet"},
		{"missing NIC", func(in *Input) { in.Inventory.NICs = in.Inventory.NICs[1:] }, webVM, "NotApplicable InventoryError"},
		{"subnet NSG blocks what the NIC allows", func(in *Input) {
			in.Inventory.Subnets[0].NSG = azPrefix + "Microsoft.Network/networkSecurityGroups/app-subnet-nsg"
		}, webVM, "Healthy"},
		{"a deny ahead of the allow closes the port", func(in *Input) {
			n := &in.Inventory.NSGs[0]
			n.SecurityRules = append(n.SecurityRules, netrule.SecurityRule{Name: "DenySSH", Priority: 900, Direction: netrule.Inbound, Access: netrule.Deny,
				Protocol: netrule.Any, SourceAddressPrefix: "*", SourcePortRange: "*", DestinationAddressPrefix: "*", DestinationPortRange: "22"})
		}, webVM, "Healthy"},
		{"AWS ENI without security groups", func(in *Input) { in.Inventory.ENIs[1].SecurityGroups = nil }, worker, "NotApplicable NoNetworkSecurityGroup"},
		{"AWS instance without ENIs", func(in *Input) { in.Inventory.VMs[6].ENIs = nil }, worker, "NotApplicable NoNetworkSecurityGroup"},
		{"extra port in a wide range", func(in *Input) {
			in.ExtraPorts = []int{2222}
			in.Inventory.SecurityGroups[1].IPPermissions = append(in.Inventory.SecurityGroups[1].IPPermissions,
				netrule.IPPermission{IPProtocol: "tcp", FromPort: 2000, ToPort: 2999, IPRanges: []netrule.IPRange{{CidrIP: "198.18.0.0/15"}}})
		}, worker, "Unhealthy 2222:sg-0a1b2c3d4e5f60002/IpPermissions[1]/198.18.0.0/15"},
		{"WinRM through a port list and protocol *", func(in *Input) {
			in.Inventory.NSGs[3].SecurityRules = append(in.Inventory.NSGs[3].SecurityRules, netrule.SecurityRule{Name: "AllowMgmt", Priority: 150,
				Direction: netrule.Inbound, Access: netrule.Allow, Protocol: netrule.Any, SourceAddressPrefix: "*", SourcePortRange: "*",
				DestinationAddressPrefix: "*", DestinationPortRanges: []string{"80", "5985-5986"}})
		}, appVM, "Unhealthy 5985:app-subnet-nsg/AllowMgmt/* 5986:app-subnet-nsg/AllowMgmt/*"},
		{"host without agent", func(in *Input) { addHost(in, hostID, "198.18.2.10") }, hostID, "NotApplicable NoAgent"},
		{"host with agent, public address, no policy", func(in *Input) {
			addHost(in, hostID, "198.18.2.10")
			in.Agents = map[string]bool{inventory.Key(hostID): true}
		}, hostID, "Unhealthy 22:build-01/no drawbridge policy on a host with a public address/* 3389:build-01/no drawbridge policy on a host with a public address/* 5985:build-01/no drawbridge policy on a host with a public address/* 5986:build-01/no drawbridge policy on a host with a public address/*"},
		{"host with agent and policy", func(in *Input) {
			addHost(in, hostID, "198.18.2.10")
			in.Agents = map[string]bool{inventory.Key(hostID): true}
			in.Policies = map[string][]PolicyPort{inventory.Key(hostID): {{22, netrule.Tcp}, {3389, netrule.Tcp}, {5985, netrule.Tcp}, {5986, netrule.Tcp}}}
		}, hostID, "Healthy still:22 still:3389 still:5985 still:5986"},
		{"host with agent, private address only", func(in *Input) {
			addHost(in, hostID, "10.9.0.5")
			in.Agents = map[string]bool{inventory.Key(hostID): true}
		}, hostID, "Healthy"},
		{"host run by the sim provider", func(in *Input) {
			addHost(in, hostID, "198.18.2.10")
			in.Inventory.VMs[len(in.Inventory.VMs)-1].Provider = inventory.ProviderSim
		}, hostID, "NotApplicable ProviderCannotEnforce"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{Inventory: inventory.Sample()}
			tt.mod(&in)
			rep := assessOrFail(t, in)
			for _, r := range rep.Results {
				if r.ID == tt.vm {
					if got := summary(r); got != tt.want {
						t.Errorf("got  %s\nwant %s (detail %q)", got, tt.want, r.Detail)
					}
					return
				}
			}
			t.Fatalf("VM %s not in the report", tt.vm)
		})
	}
}

func addHost(in *Input, id, addr string) {
	in.Inventory.VMs = append(in.Inventory.VMs, inventory.VM{ID: id, Name: "build-01", Cloud: inventory.Host,
		Provider: inventory.ProviderNftables, Addresses: []netip.Addr{netip.MustParseAddr(addr)}})
}

func TestAssessRejectsBadExtraPort(t *testing.T) {
	_, err := Assess(Input{Inventory: inventory.Sample(), ExtraPorts: []int{70000}})
	if err == nil || err.Error() != "assessment: extraPorts: 70000 is not a port number (1-65535)" {
		t.Errorf("err = %v", err)
	}
}

func TestFix(t *testing.T) {
	in := Input{Inventory: inventory.Sample(), Policies: map[string][]PolicyPort{inventory.Key(winVM): {{Number: 22, Protocol: netrule.Tcp}}}}
	plan := Fix(assessOrFail(t, in))
	got, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	port := func(n int) string {
		return fmt.Sprintf(`{"number":%d,"protocol":"TCP","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}`, n)
	}
	want := `{"virtualMachines":[` +
		`{"id":"` + webVM + `","name":"web-01","location":"westeurope","ports":[` + port(22) + `]},` +
		`{"id":"` + winVM + `","name":"win-01","location":"westeurope","extendsExistingPolicy":true,"ports":[` + port(3389) + `]},` +
		`{"id":"` + bastion + `","name":"bastion","location":"us-east-1","ports":[` + port(22) + `]},` +
		`{"id":"` + crowded + `","name":"crowded","location":"us-east-1","ports":[` + port(22) + `]}]}`
	if string(got) != want {
		t.Errorf("plan:\n got  %s\n want %s", got, want)
	}

	// After the fix is applied (the plan's ports become policies), the same
	// VMs are healthy.
	pol := map[string][]PolicyPort{}
	for _, vm := range plan.VirtualMachines {
		for _, p := range vm.Ports {
			pol[inventory.Key(vm.ID)] = append(pol[inventory.Key(vm.ID)], PolicyPort{Number: p.Number, Protocol: netrule.Tcp})
		}
	}
	pol[inventory.Key(winVM)] = append(pol[inventory.Key(winVM)], PolicyPort{Number: 22, Protocol: netrule.Tcp})
	after := assessOrFail(t, Input{Inventory: inventory.Sample(), Policies: pol})
	if after.Summary.Unhealthy != 0 || after.Summary.Healthy != 6 {
		t.Errorf("after the fix: %+v", after.Summary)
	}
	if len(Fix(after).VirtualMachines) != 0 {
		t.Errorf("a second fix plan is not empty: %+v", Fix(after))
	}
}

func TestBuildViews(t *testing.T) {
	now := time.Date(2025, 6, 10, 12, 0, 0, 0, time.UTC)
	in := Input{Inventory: inventory.Sample(), Policies: map[string][]PolicyPort{
		inventory.Key(webVM): {{Number: 22, Protocol: netrule.Tcp}},
		inventory.Key(appVM): {{Number: 3389, Protocol: netrule.Tcp}},
		inventory.Key(dbVM):  {{Number: 22, Protocol: netrule.Tcp}}, // no NSG: unsupported despite the policy
	}}
	history := []AccessRecord{
		{VMID: webVM, User: "carol@example.com", Time: now.Add(-8 * 24 * time.Hour), Approved: true}, // outside the window
		{VMID: strings.ToUpper(webVM), User: "bob@example.com", Time: now.Add(-3 * 24 * time.Hour), Approved: true},
		{VMID: webVM, User: "alice@example.com", Time: now.Add(-time.Hour), Approved: true},
		{VMID: webVM, User: "mallory@example.com", Time: now.Add(-30 * time.Minute), Approved: false}, // denied
		{VMID: webVM, User: "eve@example.com", Time: now.Add(time.Hour), Approved: true},              // after now
		{VMID: appVM, User: "carol@example.com", Time: now.Add(-10 * 24 * time.Hour), Approved: true},
	}
	v := BuildViews(assessOrFail(t, in), history, now)

	if len(v.Configured) != 2 {
		t.Fatalf("configured = %+v", v.Configured)
	}
	web, app := v.Configured[0], v.Configured[1]
	if web.ID != webVM || web.ApprovedRequests != 2 || !web.LastAccess.Equal(now.Add(-time.Hour)) || web.LastUser != "alice@example.com" || len(web.StillReachable) != 1 {
		t.Errorf("web-01 row = %+v", web)
	}
	if app.ID != appVM || app.ApprovedRequests != 0 || !app.LastAccess.Equal(now.Add(-10*24*time.Hour)) || app.LastUser != "carol@example.com" {
		t.Errorf("app-01 row = %+v", app)
	}
	var nc []string
	for _, r := range v.NotConfigured {
		nc = append(nc, shortID(r.ID)+":"+string(r.Status))
	}
	if want := []string{"win-01:Unhealthy", "i-0a1b2c3d4e5f60001:Unhealthy", "i-0a1b2c3d4e5f60002:Healthy", "i-0a1b2c3d4e5f60003:Unhealthy"}; !reflect.DeepEqual(nc, want) {
		t.Errorf("not configured = %v, want %v", nc, want)
	}
	var un []string
	for _, r := range v.Unsupported {
		un = append(un, shortID(r.ID)+":"+string(r.Reason))
	}
	if want := []string{"db-01:NoNetworkSecurityGroup", "fw-01:FirewallManagerPolicy"}; !reflect.DeepEqual(un, want) {
		t.Errorf("unsupported = %v, want %v", un, want)
	}
}
