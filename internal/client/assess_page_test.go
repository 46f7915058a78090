package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
	"github.com/drawbridge/drawbridge/internal/assess"
)

// Assessment follows nextLink and joins the pages' results, views and
// fix plans; the summary is the server's (whole on every page).
func TestAssessmentFollowsNextLink(t *testing.T) {
	var ts *httptest.Server
	ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a api.Assessment
		a.Summary = assess.Summary{Healthy: 1, Unhealthy: 1}
		switch r.URL.Query().Get("$skipToken") {
		case "":
			if r.URL.Query().Get("scope") != "/subscriptions/s" {
				t.Errorf("first page asked for scope %q", r.URL.Query().Get("scope"))
			}
			a.Results = []assess.Result{{ID: "vm1", Status: assess.Healthy}}
			a.Views.Configured = []assess.ConfiguredVM{{ID: "vm1"}}
			a.NextLink = ts.URL + "/drawbridge/v1/assessment?%24skipToken=1&scope=%2Fsubscriptions%2Fs"
		case "1":
			a.Results = []assess.Result{{ID: "vm2", Status: assess.Unhealthy}}
			a.Views.NotConfigured = []assess.NotConfiguredVM{{ID: "vm2"}}
			a.Fix.VirtualMachines = []assess.FixVM{{ID: "vm2"}}
		default:
			http.Error(w, "bad token", 400)
			return
		}
		json.NewEncoder(w).Encode(a)
	}))
	defer ts.Close()
	c, err := New(ts.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Assessment(context.Background(), "/subscriptions/s")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Results) != 2 || a.Results[1].ID != "vm2" || len(a.Views.Configured) != 1 || len(a.Views.NotConfigured) != 1 ||
		len(a.Fix.VirtualMachines) != 1 || a.Summary.Healthy != 1 || a.NextLink != "" {
		t.Fatalf("joined assessment: %+v", a)
	}
}
