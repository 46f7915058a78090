// Package jsonmemo remembers what JSON bodies decode to, keyed by the Go
// type and the bytes themselves, so that stored objects read again and
// again unchanged (a VM, its NIC, subnet and NSGs on every request for it)
// skip encoding/json. Keying by content makes it exact without any
// invalidation: changed bytes are a miss. The remembered values are never
// handed out: callers get deep copies, which they may change. It is safe
// for concurrent use.
package jsonmemo

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
)

type decodeMemo struct {
	mu sync.Mutex
	m  map[memoKey]any // pointer to the pristine decoded value
}

type memoKey struct {
	t    reflect.Type
	body string
}

// maxMemoEntries bounds the memo's memory (a few objects per VM); past it
// the memo starts again empty.
const maxMemoEntries = 8192

var memo = &decodeMemo{m: map[memoKey]any{}}

// Decode sets *v to what raw decodes to, as json.Unmarshal(raw, v) would
// into a new value, and returns a pristine copy of the result that the
// caller must not modify (to tell later whether *v was changed).
func Decode[T any](raw []byte, v *T) (*T, error) { return decode(memo, raw, v) }

func decode[T any](d *decodeMemo, raw []byte, v *T) (*T, error) {
	k := memoKey{reflect.TypeFor[T](), string(raw)}
	d.mu.Lock()
	p, ok := d.m[k]
	d.mu.Unlock()
	if ok {
		pristine := p.(*T)
		deepCopyInto(reflect.ValueOf(v).Elem(), reflect.ValueOf(pristine).Elem())
		return pristine, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, err
	}
	pristine := new(T)
	deepCopyInto(reflect.ValueOf(pristine).Elem(), reflect.ValueOf(v).Elem())
	d.store(k, pristine)
	return pristine, nil
}

// DecodeInto is Decode for a pointer of any type, as json.Unmarshal takes.
func DecodeInto(raw []byte, into any) error {
	v := reflect.ValueOf(into)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("jsonmemo: decode into %T, not a non-nil pointer", into)
	}
	k := memoKey{v.Type().Elem(), string(raw)}
	memo.mu.Lock()
	p, ok := memo.m[k]
	memo.mu.Unlock()
	if ok {
		deepCopyInto(v.Elem(), reflect.ValueOf(p).Elem())
		return nil
	}
	fresh := reflect.New(v.Type().Elem())
	if err := json.Unmarshal(raw, fresh.Interface()); err != nil {
		return err
	}
	deepCopyInto(v.Elem(), fresh.Elem())
	memo.store(k, fresh.Interface())
	return nil
}

func (d *decodeMemo) store(k memoKey, pristine any) {
	d.mu.Lock()
	if len(d.m) >= maxMemoEntries {
		clear(d.m)
	}
	d.m[k] = pristine
	d.mu.Unlock()
}

// Remember records that body is the encoding of *val (val a pointer), so
// that the next reader of the bytes just written gets a copy instead of
// decoding them. The value is what was encoded, not a decoding of it: it
// may differ from json.Unmarshal's in what JSON does not keep (an empty
// slice where Unmarshal gives nil), never in what it encodes to.
func Remember(body []byte, val any) { memo.remember(body, val) }

func (d *decodeMemo) remember(body []byte, val any) {
	v := reflect.ValueOf(val)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return
	}
	pristine := reflect.New(v.Type().Elem())
	deepCopyInto(pristine.Elem(), v.Elem())
	d.store(memoKey{v.Type().Elem(), string(body)}, pristine.Interface())
}

// deepCopyInto sets dst (settable) to a copy of src sharing no slice, map
// or pointer target that an exported field reaches. Unexported fields are
// copied as they are: in the types decoded here they belong to immutable
// values (netip.Addr, time.Time).
func deepCopyInto(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		p := reflect.New(src.Type().Elem())
		deepCopyInto(p.Elem(), src.Elem())
		dst.Set(p)
	case reflect.Interface:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		c := reflect.New(src.Elem().Type()).Elem()
		deepCopyInto(c, src.Elem())
		dst.Set(c)
	case reflect.Slice:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		if isFlat(src.Type().Elem()) {
			reflect.Copy(s, src)
		} else {
			for i := range src.Len() {
				deepCopyInto(s.Index(i), src.Index(i))
			}
		}
		dst.Set(s)
	case reflect.Map:
		if src.IsNil() {
			dst.SetZero()
			return
		}
		m := reflect.MakeMapWithSize(src.Type(), src.Len())
		for it := src.MapRange(); it.Next(); {
			v := reflect.New(src.Type().Elem()).Elem()
			deepCopyInto(v, it.Value())
			m.SetMapIndex(it.Key(), v)
		}
		dst.Set(m)
	case reflect.Array:
		dst.Set(src)
		if !isFlat(src.Type().Elem()) {
			for i := range src.Len() {
				deepCopyInto(dst.Index(i), src.Index(i))
			}
		}
	case reflect.Struct:
		dst.Set(src)
		if isFlat(src.Type()) {
			return
		}
		for i := range src.NumField() {
			if src.Type().Field(i).IsExported() {
				deepCopyInto(dst.Field(i), src.Field(i))
			}
		}
	default:
		dst.Set(src)
	}
}

// flatTypes caches isFlat, which the copy asks for every value.
var flatTypes sync.Map // reflect.Type → bool

// isFlat reports whether a value of t can be copied by assignment: nothing
// an exported field reaches is a slice, map, pointer or interface.
func isFlat(t reflect.Type) bool {
	if f, ok := flatTypes.Load(t); ok {
		return f.(bool)
	}
	flat := true
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Slice, reflect.Map, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		flat = false
	case reflect.Array:
		flat = isFlat(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if t.Field(i).IsExported() && !isFlat(t.Field(i).Type) {
				flat = false
				break
			}
		}
	}
	flatTypes.Store(t, flat)
	return flat
}
