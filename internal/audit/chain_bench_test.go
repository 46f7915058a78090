package audit

import (
	"encoding/json"
	"testing"
	"time"
)

func benchRecord() Record {
	after, _ := json.Marshal(map[string]any{"id": "0190c1f0a1b2c3d4e5f60718293a4b5c", "policyId": "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Security/locations/westeurope/jitNetworkAccessPolicies/p",
		"requestor": "admin", "sourceAddress": "127.0.0.1", "startTimeUtc": "2026-11-25T12:00:00Z", "grants": []any{map[string]any{
			"id": "0190c1f0a1b2c3d4e5f60718293a4b5d", "vmId": "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1",
			"port": 22, "protocol": "TCP", "source": "198.18.0.1/32", "startTimeUtc": "2026-11-25T12:00:00Z", "endTimeUtc": "2026-11-25T13:00:00Z",
			"status": "Initiated", "statusReason": "UserRequested", "applied": true}}})
	return Chain(Record{Seq: 41, Hash: "00"}, Record{Time: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), Principal: "admin", SourceAddress: "127.0.0.1",
		Operation: "initiate", Target: "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1", Result: Succeeded,
		Detail: "request 0190c1f0a1b2c3d4e5f60718293a4b5c", After: after})
}

// Chain's cost is mostly canonicalising Before and After.
func BenchmarkChain(b *testing.B) {
	r := benchRecord()
	r.After = json.RawMessage(`{"policyId":"x","id":"y","grants":[{"vmId":"v","id":"g","port":22,"status":"Initiated","applied":true,"endTimeUtc":"2026-11-25T13:00:00Z"}],"requestor":"admin","startTimeUtc":"2026-11-25T12:00:00Z"}`)
	for b.Loop() {
		_ = Chain(Record{Seq: 41, Hash: "00"}, r)
	}
}
