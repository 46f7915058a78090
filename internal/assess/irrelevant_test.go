package assess

import (
	"reflect"
	"strconv"
	"testing"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/netrule"
)

// The assessment compiles only the NSG rules that may decide a management
// port. Padding every NSG of the sample with rules that cannot (other
// ports, port ranges and lists that miss them, outbound rules on 22, UDP on
// other ports) changes no result: same statuses, exposures, deciding rules
// and example sources as the sample alone, with and without extra ports.
func TestIrrelevantRulesChangeNothing(t *testing.T) {
	padded := inventory.Sample()
	rule := func(name string, prio int, dir netrule.Direction, acc netrule.Access, proto netrule.Protocol, src string, ports ...string) netrule.SecurityRule {
		r := netrule.SecurityRule{Name: name, Priority: prio, Direction: dir, Access: acc, Protocol: proto,
			SourceAddressPrefix: src, SourcePortRange: "*", DestinationAddressPrefix: "*"}
		if len(ports) == 1 {
			r.DestinationPortRange = ports[0]
		} else {
			r.DestinationPortRanges = ports
		}
		return r
	}
	for i := range padded.NSGs {
		n := &padded.NSGs[i]
		rs := append([]netrule.SecurityRule(nil), n.SecurityRules...)
		for k := 0; k < 90; k++ {
			p := 4000 + k
			switch k % 5 {
			case 0:
				rs = append(rs, rule("pad-allow-"+strconv.Itoa(k), p, netrule.Inbound, netrule.Allow, netrule.Tcp, "Internet", strconv.Itoa(9000+k)))
			case 1:
				rs = append(rs, rule("pad-deny-range-"+strconv.Itoa(k), p, netrule.Inbound, netrule.Deny, netrule.Any, "*", "23-3388"))
			case 2:
				rs = append(rs, rule("pad-list-"+strconv.Itoa(k), p, netrule.Inbound, netrule.Allow, netrule.Any, "*", "80", "443", "3390-5984", "5987-8079"))
			case 3:
				rs = append(rs, rule("pad-udp-"+strconv.Itoa(k), p, netrule.Inbound, netrule.Allow, netrule.Udp, "Internet", "10000-20000"))
			case 4:
				rs = append(rs, rule("pad-out-"+strconv.Itoa(k), p, netrule.Outbound, netrule.Deny, netrule.Tcp, "*", "22"))
			}
		}
		n.SecurityRules = rs
	}
	if err := inventory.Validate(padded); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]int{nil, {8080}} {
		want := assessOrFail(t, Input{Inventory: inventory.Sample(), ExtraPorts: extra})
		got := assessOrFail(t, Input{Inventory: padded, ExtraPorts: extra})
		if !reflect.DeepEqual(got, want) {
			for i := range got.Results {
				if !reflect.DeepEqual(got.Results[i], want.Results[i]) {
					t.Errorf("extra ports %v, %s:\n  padded %+v\n  sample %+v", extra, shortID(want.Results[i].ID), got.Results[i], want.Results[i])
				}
			}
			if got.Summary != want.Summary {
				t.Errorf("extra ports %v: summary padded %+v, sample %+v", extra, got.Summary, want.Summary)
			}
		}
	}
	// The padding is compiled as soon as its port is a management port:
	// pad-allow-0 exposes 9000 on web-01 (whose NSG allows 22 only to that).
	rep9 := assessOrFail(t, Input{Inventory: padded, ExtraPorts: []int{9000}})
	if s := summary(rep9.Results[0]); s != "Unhealthy 22:web-01-nsg/AllowSSHFromInternet/Internet 9000:web-01-nsg/pad-allow-0/Internet" {
		t.Errorf("web-01 padded, extra port 9000: %s", s)
	}
	// And the verdict is the one written out in TestAssessSample.
	rep := assessOrFail(t, Input{Inventory: padded})
	if s := summary(rep.Results[0]); s != "Unhealthy 22:web-01-nsg/AllowSSHFromInternet/Internet" {
		t.Errorf("web-01 padded: %s", s)
	}
}
