package inventory

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// FuzzParse: any document, YAML or JSON, is either refused or yields an
// inventory that validates, whose JSON form parses again to the same JSON
// (nothing accepted is lost or changed by a round trip).
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/example-inventory.yaml"); err == nil {
		f.Add(b)
	}
	if b, err := json.Marshal(Sample()); err == nil {
		f.Add(b)
	}
	for _, s := range []string{"", "{}", "vms: []", "vms:\n  - id: /subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/v\n    cloud: host\n    provider: sim\n",
		`{"vms":[{"id":"x"}]}`, "a: &a [*a, *a]", "networkSecurityGroup: []", "vms: {", "\xff\xfe"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if err := Validate(inv); err != nil {
			t.Fatalf("parsed inventory does not validate: %v", err)
		}
		first, err := json.Marshal(inv)
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(first)
		if err != nil {
			t.Fatalf("JSON form of an accepted inventory is refused: %v\n%s", err, first)
		}
		second, _ := json.Marshal(back)
		if !bytes.Equal(first, second) {
			t.Fatalf("round trip changed the inventory:\n%s\n%s", first, second)
		}
	})
}
