package inventory

import (
	"fmt"
	"slices"

	"sigs.k8s.io/yaml"
)

// Parse reads an inventory document in YAML or JSON (JSON is YAML), with the
// JSON field names of the types in this package. A field the model does not
// know is an error naming the field, so that a typo ("networkSecurityGroup"
// for "networkSecurityGroups") is not silently dropped. The result is
// validated; on any error the returned inventory is empty.
func Parse(data []byte) (Inventory, error) {
	var inv Inventory
	// The AWS CLI's describe-instances / describe-network-interfaces
	// output is accepted as printed (awsdoc.go).
	doc, err := yaml.YAMLToJSON(data)
	if err != nil {
		return Inventory{}, fmt.Errorf("reading inventory document: %w", err)
	}
	doc, vms, enis, err := splitAWSOutput(doc)
	if err != nil {
		return Inventory{}, err
	}
	if err := yaml.UnmarshalStrict(doc, &inv); err != nil {
		return Inventory{}, fmt.Errorf("reading inventory document: %w", err)
	}
	inv.VMs = append(inv.VMs, vms...)
	for _, e := range enis {
		if !slices.ContainsFunc(inv.ENIs, func(x ENI) bool { return x.ID == e.ID }) {
			inv.ENIs = append(inv.ENIs, e)
		}
	}
	if err := Validate(inv); err != nil {
		return Inventory{}, err
	}
	return inv, nil
}
