package store

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
)

// MapObjects is Objects over a map of kind → key → JSON body: scratch
// space for planning against a copy of objects (the azure provider's
// reads of ARM) and a fake for tests. Not safe for concurrent use; no
// transactions.
type MapObjects map[string]map[string][]byte

var _ Objects = MapObjects{}

func (m MapObjects) GetObject(_ context.Context, kind, key string, into any) error {
	b, ok := m[kind][key]
	if !ok {
		return NotFound(kind, key)
	}
	return json.Unmarshal(b, into)
}

func (m MapObjects) PutObject(_ context.Context, kind, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if m[kind] == nil {
		m[kind] = map[string][]byte{}
	}
	m[kind][key] = b
	return nil
}

func (m MapObjects) DeleteObject(_ context.Context, kind, key string) error {
	delete(m[kind], key)
	return nil
}

// ListObjects calls fn for each object of kind in key order.
func (m MapObjects) ListObjects(_ context.Context, kind string, fn func(string, []byte) error) error {
	for _, k := range slices.Sorted(maps.Keys(m[kind])) {
		if err := fn(k, m[kind][k]); err != nil {
			return err
		}
	}
	return nil
}
