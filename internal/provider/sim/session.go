package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"sort"

	"github.com/drawbridge/drawbridge/internal/inventory"
	"github.com/drawbridge/drawbridge/internal/jsonmemo"
	"github.com/drawbridge/drawbridge/internal/store"
)

type objKey struct{ kind, key string }

type entry struct {
	// orig is the JSON as loaded (the stored bytes, from a store.RawObjects;
	// json.Marshal's encoding otherwise); nil if the object did not exist.
	orig    []byte
	val     any // pointer to the decoded, possibly changed value; nil once deleted
	deleted bool
	// pristine, if set, is what orig decoded to (never modified): a val
	// still deeply equal to it is unchanged, and flush skips encoding it.
	// put clears it: a value put is encoded without that comparison, which
	// would only find the change (a changed NSG, on every request) after
	// walking it.
	pristine any
}

// session caches every object a reconcile reads, so that the computation
// works on copies; flush writes back exactly the objects whose JSON changed.
type session struct {
	ctx  context.Context
	objs store.Objects
	m    map[objKey]*entry

	oldFP, newFP *Footprint // where the VM's JIT objects were and are (footprint.go)
	// connectTo: where the grants' requesters connect, if not the VM
	// (a firewall's DNAT rule, firewall.go); Observed.ConnectTo.
	connectTo map[string]netip.AddrPort
}

func newSession(ctx context.Context, o store.Objects) *session {
	return &session{ctx: ctx, objs: o, m: map[objKey]*entry{}}
}

// get returns the cached copy of (kind, id), loading it on first use; nil
// (and no error) if it does not exist.
func get[T any](s *session, kind, id string) (*T, error) {
	k := objKey{kind, inventory.Key(id)}
	if e, ok := s.m[k]; ok {
		if e.val == nil {
			return nil, nil
		}
		v, ok := e.val.(*T)
		if !ok {
			return nil, fmt.Errorf("%s %s: loaded as %T, wanted %T", kind, id, e.val, new(T))
		}
		return v, nil
	}
	v := new(T)
	if rg, ok := s.objs.(store.RawObjects); ok {
		// The stored bytes stand for the object: flush compares its new
		// encoding with them.
		raw, err := rg.GetObjectRaw(s.ctx, kind, k.key)
		if errors.Is(err, store.ErrNotFound) {
			s.m[k] = &entry{}
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s %s: %w", kind, id, err)
		}
		pristine, err := jsonmemo.Decode(rg.Memo(), raw, v)
		if err != nil {
			return nil, fmt.Errorf("read %s %s: decode: %w", kind, id, err)
		}
		s.m[k] = &entry{orig: raw, val: v, pristine: pristine}
		return v, nil
	}
	err := s.objs.GetObject(s.ctx, kind, k.key, v)
	if errors.Is(err, store.ErrNotFound) {
		s.m[k] = &entry{}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", kind, id, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", kind, id, err)
	}
	s.m[k] = &entry{orig: b, val: v}
	return v, nil
}

// put makes v the new value of (kind, id).
func (s *session) put(kind, id string, v any) {
	k := objKey{kind, inventory.Key(id)}
	e, ok := s.m[k]
	if !ok {
		// Never read: remember that we do not know the stored bytes, so that
		// flush always writes it.
		e = &entry{orig: nil}
		s.m[k] = e
	}
	e.val, e.deleted, e.pristine = v, false, nil
}

// del removes (kind, id).
func (s *session) del(kind, id string) {
	k := objKey{kind, inventory.Key(id)}
	e, ok := s.m[k]
	if !ok {
		e = &entry{orig: []byte("unknown")}
		s.m[k] = e
	}
	e.val, e.deleted = nil, true
}

// keys lists the keys of kind as they are in this session (stored ones plus
// those created here, minus those deleted here), in key order.
func (s *session) keys(kind string) ([]string, error) {
	seen := map[string]bool{}
	err := s.objs.ListObjects(s.ctx, kind, func(key string, _ []byte) error {
		seen[key] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	for k, e := range s.m {
		if k.kind == kind {
			seen[k.key] = e.val != nil
		}
	}
	var out []string
	for k, ok := range seen {
		if ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

// flush writes the changed objects, in (kind, key) order so that backends
// see a deterministic sequence. It hands the values it writes to the
// decode memo: the session must not be used after it.
func (s *session) flush() error {
	ks := make([]objKey, 0, len(s.m))
	for k := range s.m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if ks[i].kind != ks[j].kind {
			return ks[i].kind < ks[j].kind
		}
		return ks[i].key < ks[j].key
	})
	for _, k := range ks {
		e := s.m[k]
		switch {
		case e.deleted:
			if e.orig != nil {
				if err := s.objs.DeleteObject(s.ctx, k.kind, k.key); err != nil {
					return fmt.Errorf("delete %s %s: %w", k.kind, k.key, err)
				}
			}
		case e.val != nil:
			if e.pristine != nil && reflect.DeepEqual(e.val, e.pristine) {
				continue
			}
			enc, err := store.EncodeJSON(e.val)
			if err != nil {
				return fmt.Errorf("encode %s %s: %w", k.kind, k.key, err)
			}
			b := enc.Bytes()
			if string(b) == string(e.orig) {
				continue
			}
			// A store that keeps the bytes as given gets the encoding
			// just made; a difference from the bytes read is a change (at
			// worst, once, an object another encoder wrote with the same
			// meaning is rewritten), so no canonical re-encoding is needed.
			if rp, ok := s.objs.(store.RawObjects); ok {
				if err := rp.PutObjectRaw(s.ctx, k.kind, k.key, enc); err != nil {
					return fmt.Errorf("write %s %s: %w", k.kind, k.key, err)
				}
				// The next reader of these bytes skips decoding them;
				// the memo keeps its own copy of the value.
				rp.Memo().Remember(b, e.val)
				continue
			}
			if err := s.objs.PutObject(s.ctx, k.kind, k.key, e.val); err != nil {
				return fmt.Errorf("write %s %s: %w", k.kind, k.key, err)
			}
		}
	}
	return nil
}
