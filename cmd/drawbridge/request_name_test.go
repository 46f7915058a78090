package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/drawbridge/drawbridge/internal/api"
)

// Against a server that predates names in short requests (400
// InvalidResourceId for a name), request falls back to resolving the name
// from the VM list and sends the ID.
func TestRequestByNameFallsBackOnOldServer(t *testing.T) {
	const id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/web-01"
	var (
		mu   sync.Mutex
		sent []string
	)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "GET" && r.URL.Path == "/drawbridge/v1/vms":
			_ = json.NewEncoder(w).Encode(api.ListResponse[api.VMSummary]{Value: []api.VMSummary{{ID: id, Name: "web-01"}}})
		case r.Method == "POST" && r.URL.Path == "/drawbridge/v1/requests":
			var in api.SimpleRequest
			_ = json.NewDecoder(r.Body).Decode(&in)
			mu.Lock()
			sent = append(sent, in.VM)
			mu.Unlock()
			if !strings.HasPrefix(in.VM, "/") {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"error":{"code":"InvalidResourceId","message":"resource ID \"web-01\" must start with /subscriptions/"}}`))
				return
			}
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(api.RequestResource{ID: "r1", VirtualMachines: []api.RequestVM{{ID: in.VM}}})
		default:
			http.NotFound(w, r)
		}
	}))
	defer ts.Close()
	var out, errb bytes.Buffer
	env := map[string]string{"DRAWBRIDGE_SERVER": ts.URL, "XDG_CONFIG_HOME": t.TempDir(), "HOME": t.TempDir()}
	code := run(context.Background(), []string{"request", "web-01", "--port", "22", "--duration", "1h", "--source", "198.18.0.7"},
		&out, &errb, func(k string) string { return env[k] })
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if len(sent) != 2 || sent[0] != "web-01" || sent[1] != id {
		t.Fatalf("requests sent for VMs %q; want the name, then the ID", sent)
	}
	if !strings.Contains(out.String(), "request r1") {
		t.Errorf("output lacks the request ID:\n%s", out.String())
	}
}
