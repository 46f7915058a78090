package main

import (
	"encoding/json"
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// readInventoryFiles reads one inventory document, or merges several into
// one: the lists under each top-level key are concatenated, so the outputs
// of `aws ec2 describe-security-groups`, `describe-instances` and
// `describe-network-interfaces` can be applied together as printed.
func readInventoryFiles(files []string) ([]byte, error) {
	if len(files) == 1 {
		data, err := os.ReadFile(files[0])
		if err != nil {
			return nil, fmt.Errorf("-f: %v", err)
		}
		return data, nil
	}
	merged := map[string][]json.RawMessage{}
	var order []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("-f: %v", err)
		}
		doc, err := yaml.YAMLToJSON(data)
		if err != nil {
			return nil, fmt.Errorf("-f %s: %v", f, err)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(doc, &top); err != nil {
			return nil, fmt.Errorf("-f %s: not a document of lists: %v", f, err)
		}
		for k, v := range top {
			var list []json.RawMessage
			if err := json.Unmarshal(v, &list); err != nil {
				return nil, fmt.Errorf("-f %s: %s: not a list: %v", f, k, err)
			}
			if _, ok := merged[k]; !ok {
				order = append(order, k)
			}
			merged[k] = append(merged[k], list...)
		}
	}
	return json.Marshal(merged)
}
