package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// -o yaml prints the same document as -o json, as YAML, for listings and
// for a change; an unknown format is a usage error.
func TestOutputYAMLIsTheJSONDocument(t *testing.T) {
	u := startServer(t).URL
	ok(t, u, "policy", "set", "web-01", "--port", "22")
	for _, args := range [][]string{
		{"vm", "list"},
		{"policy", "list"},
		{"policy", "get", "web-01"},
	} {
		js := ok(t, u, append(args, "-o", "json")...)
		ys := ok(t, u, append(args, "-o", "yaml")...)
		if strings.HasPrefix(strings.TrimSpace(ys), "{") || strings.HasPrefix(strings.TrimSpace(ys), "[") {
			t.Fatalf("%v -o yaml printed JSON:\n%s", args, ys)
		}
		var fromJSON, fromYAML any
		if err := json.Unmarshal([]byte(js), &fromJSON); err != nil {
			t.Fatalf("%v -o json: %v", args, err)
		}
		if err := yaml.Unmarshal([]byte(ys), &fromYAML); err != nil {
			t.Fatalf("%v -o yaml: %v\n%s", args, err, ys)
		}
		if !reflect.DeepEqual(fromJSON, fromYAML) {
			t.Errorf("%v: -o yaml differs from -o json:\n%s\n%s", args, ys, js)
		}
	}
	removed := ok(t, u, "policy", "delete", "web-01", "-o", "yaml")
	if !strings.Contains(removed, "removedVm: ") && !strings.Contains(removed, "deletedPolicy: ") {
		t.Errorf("policy delete -o yaml = %q", removed)
	}
	if r := cli(t, u, "vm", "list", "-o", "xml"); r.code != exitUsage || !strings.Contains(r.stderr, "--output") {
		t.Errorf("-o xml: exit %d (want %d, usage), stderr %q", r.code, exitUsage, r.stderr)
	}
}
