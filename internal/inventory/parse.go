package inventory

import (
	"fmt"

	"sigs.k8s.io/yaml"
)

// Parse reads an inventory document in YAML or JSON (JSON is YAML), with the
// JSON field names of the types in this package. A field the model does not
// know is an error naming the field, so that a typo ("networkSecurityGroup"
// for "networkSecurityGroups") is not silently dropped. The result is
// validated; on any error the returned inventory is empty.
func Parse(data []byte) (Inventory, error) {
	var inv Inventory
	data, err := normalizeAz(data) // objects as az or ARM print them (azshape.go)
	if err != nil {
		return Inventory{}, fmt.Errorf("reading inventory document: %w", err)
	}
	if err := yaml.UnmarshalStrict(data, &inv); err != nil {
		return Inventory{}, fmt.Errorf("reading inventory document: %w", err)
	}
	if err := Validate(inv); err != nil {
		return Inventory{}, err
	}
	return inv, nil
}
