package api_test

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// GET /drawbridge/v1/assessment pages its per-VM results like the lists:
// $top VMs a page (results, views and fix plan of those VMs), the summary
// always of every VM, and nextLink to the rest; following it gives the
// same results as one whole page.
func TestAssessmentPages(t *testing.T) {
	e := newEnv(t)
	whole := e.assessment("/drawbridge/v1/assessment")
	if whole.NextLink != "" || len(whole.Results) < 3 {
		t.Fatalf("default page: %d results, nextLink %q", len(whole.Results), whole.NextLink)
	}
	var results []string
	var views, fixes int
	link := "/drawbridge/v1/assessment?$top=2"
	for pages := 0; link != ""; pages++ {
		if pages > len(whole.Results) {
			t.Fatal("nextLink never ends")
		}
		p := e.assessment(link)
		if len(p.Results) > 2 || p.Summary != whole.Summary {
			t.Fatalf("page %d: %d results, summary %+v, want at most 2 and %+v", pages, len(p.Results), p.Summary, whole.Summary)
		}
		for _, r := range p.Results {
			results = append(results, r.ID)
		}
		views += len(p.Views.Configured) + len(p.Views.NotConfigured) + len(p.Views.Unsupported)
		fixes += len(p.Fix.VirtualMachines)
		link = ""
		if p.NextLink != "" {
			u, err := url.Parse(p.NextLink)
			if err != nil || u.Path != "/drawbridge/v1/assessment" || !strings.Contains(u.RawQuery, "%24top=2") {
				t.Fatalf("nextLink %q", p.NextLink)
			}
			link = u.RequestURI()
		}
	}
	var want []string
	for _, r := range whole.Results {
		want = append(want, r.ID)
	}
	if !reflect.DeepEqual(results, want) {
		t.Fatalf("pages gave %v, want %v", results, want)
	}
	wantViews := len(whole.Views.Configured) + len(whole.Views.NotConfigured) + len(whole.Views.Unsupported)
	if views != wantViews || fixes != len(whole.Fix.VirtualMachines) {
		t.Fatalf("pages gave %d view rows and %d fixes, want %d and %d", views, fixes, wantViews, len(whole.Fix.VirtualMachines))
	}
	for _, bad := range []string{"$top=0", "$top=x", "$skipToken=-1"} {
		status, body := e.do("GET", "/drawbridge/v1/assessment?"+bad, "")
		if _, target, _ := errorOf(t, body); status != 400 || target != bad[:strings.Index(bad, "=")] {
			t.Errorf("%s: %d %v, want 400 naming the parameter", bad, status, body)
		}
	}
}
