package memstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/drawbridge/drawbridge/internal/store"
)

// Generic objects (store.Objects), kept as JSON.

func (t *tx) GetObject(ctx context.Context, kind, key string, into any) error {
	if t.done {
		return errTxDone
	}
	body, ok := t.s.objects[kind][key]
	if !ok {
		return store.NotFound(kind, key)
	}
	return json.Unmarshal(body, into)
}

func (t *tx) PutObject(ctx context.Context, kind, key string, v any) error {
	if err := t.writable("put object"); err != nil {
		return err
	}
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("memstore: encode %s %q: %w", kind, key, err)
	}
	m, ok := t.s.objects[kind]
	if !ok {
		m = map[string][]byte{}
		set(t, t.s.objects, kind, m)
	}
	set(t, m, key, body)
	return nil
}

func (t *tx) DeleteObject(ctx context.Context, kind, key string) error {
	if err := t.writable("delete object"); err != nil {
		return err
	}
	if m, ok := t.s.objects[kind]; ok {
		del(t, m, key)
	}
	return nil
}

// ListObjects copies the objects before fn is called, so fn may change
// objects of this kind while listing.
func (t *tx) ListObjects(ctx context.Context, kind string, fn func(key string, body []byte) error) error {
	return t.listObjects(kind, func(string) bool { return true }, 0, fn)
}

// Policies
