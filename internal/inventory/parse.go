package inventory

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"sigs.k8s.io/yaml"
)

// Parse reads an inventory document in YAML or JSON (JSON is YAML), with the
// JSON field names of the types in this package. A field the model does not
// know is an error naming the field, so that a typo ("networkSecurityGroup"
// for "networkSecurityGroups") is not silently dropped. The AWS CLI's
// describe-security-groups / describe-instances /
// describe-network-interfaces output is accepted as printed (awsdoc.go).
// The result is validated; on any error the returned inventory is empty.
func Parse(data []byte) (Inventory, error) {
	var inv Inventory
	data, err := normalizeAz(data) // objects as az or ARM print them (azshape.go)
	if err != nil {
		return Inventory{}, fmt.Errorf("reading inventory document: %w", err)
	}
	var vms []VM
	var enis []ENI
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' && json.Valid(t) {
		// JSON (what the AWS CLI and discovery print, often large): the
		// standard decoder, much faster than the YAML path.
		rest, v, e, err := splitAWSOutput(t)
		if err != nil {
			return Inventory{}, err
		}
		vms, enis = v, e
		dec := json.NewDecoder(bytes.NewReader(rest))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&inv); err != nil {
			return Inventory{}, fmt.Errorf("reading inventory document: %w", err)
		}
	} else {
		if err := yaml.UnmarshalStrict(data, &inv); err != nil {
			return Inventory{}, fmt.Errorf("reading inventory document: %w", err)
		}
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
