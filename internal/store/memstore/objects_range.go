package memstore

import (
	"context"
	"sort"
)

// ListObjectsAfter implements auditstore.ObjectRange: at most limit
// objects of kind with keys after after, in key order, copied before fn
// is called (like ListObjects).
func (t *tx) ListObjectsAfter(ctx context.Context, kind, after string, limit int, fn func(key string, body []byte) error) error {
	return t.listObjects(kind, func(k string) bool { return k > after }, limit, fn)
}

// listObjects calls fn for at most limit (0: all) objects of kind whose
// keys match, in key order, with copies taken before the first call.
func (t *tx) listObjects(kind string, match func(key string) bool, limit int, fn func(key string, body []byte) error) error {
	if t.done {
		return errTxDone
	}
	m := t.s.objects[kind]
	var keys []string
	for k := range m {
		if match(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	bodies := make([][]byte, len(keys))
	for i, k := range keys {
		bodies[i] = append([]byte(nil), m[k]...)
	}
	for i, k := range keys {
		if err := fn(k, bodies[i]); err != nil {
			return err
		}
	}
	return nil
}
