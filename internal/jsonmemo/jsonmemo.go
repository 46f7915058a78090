// Package jsonmemo remembers what JSON bodies decode to, keyed by the Go
// type and the bytes themselves, so that stored objects read again and
// again unchanged (a VM, its NIC, subnet and NSGs on every request for it)
// skip encoding/json. Keying by content makes it exact without any
// invalidation: changed bytes are a miss. The remembered values are never
// handed out: callers get deep copies, which they may change, and values
// given to Remember are copied too. A Memo belongs to whoever creates it
// (the SQLite store); the package keeps no state of its own. It is safe
// for concurrent use.
package jsonmemo

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
)

// Memo is one memo of decoded values.
type Memo struct {
	mu sync.Mutex
	// m holds, by type and then by encoding, pointers to pristine decoded
	// values. Two levels so that a lookup indexes with string(raw), which
	// does not copy the bytes.
	m     map[reflect.Type]map[string]any
	n     int      // entries in m
	plans sync.Map // reflect.Type → *typePlan
}

// maxMemoEntries bounds the memo's memory (a few objects per VM); past it
// the memo starts again empty.
const maxMemoEntries = 8192

// New returns an empty memo.
func New() *Memo { return &Memo{m: map[reflect.Type]map[string]any{}} }

func (d *Memo) load(t reflect.Type, raw []byte) (any, bool) {
	d.mu.Lock()
	p, ok := d.m[t][string(raw)]
	d.mu.Unlock()
	return p, ok
}

func (d *Memo) store(t reflect.Type, body []byte, pristine any) {
	d.mu.Lock()
	if d.n >= maxMemoEntries {
		clear(d.m)
		d.n = 0
	}
	byBody := d.m[t]
	if byBody == nil {
		byBody = map[string]any{}
		d.m[t] = byBody
	}
	if _, ok := byBody[string(body)]; !ok {
		d.n++
	}
	byBody[string(body)] = pristine
	d.mu.Unlock()
}

// Decode sets *v to what raw decodes to, as json.Unmarshal(raw, v) would
// into a new value, and returns a pristine copy of the result that the
// caller must not modify (to tell later whether *v was changed). A nil
// memo (a store opened without one) decodes with encoding/json alone and
// returns no pristine copy; Remember on it does nothing.
func Decode[T any](d *Memo, raw []byte, v *T) (*T, error) {
	if d == nil {
		return nil, json.Unmarshal(raw, v)
	}
	pristine, err := d.decodeInto(raw, reflect.ValueOf(v))
	if err != nil {
		return nil, err
	}
	return pristine.(*T), nil
}

// DecodeInto is Decode for a pointer of any type, as json.Unmarshal takes.
func (d *Memo) DecodeInto(raw []byte, into any) error {
	v := reflect.ValueOf(into)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("jsonmemo: decode into %T, not a non-nil pointer", into)
	}
	if d == nil {
		return json.Unmarshal(raw, into)
	}
	_, err := d.decodeInto(raw, v)
	return err
}

// decodeInto sets *v (v a non-nil pointer) to a copy of what raw decodes
// to, from the memo or decoded into a new value and remembered, and
// returns the memo's pristine value.
func (d *Memo) decodeInto(raw []byte, v reflect.Value) (any, error) {
	t := v.Type().Elem()
	if p, ok := d.load(t, raw); ok {
		d.deepCopyInto(v.Elem(), reflect.ValueOf(p).Elem())
		return p, nil
	}
	fresh := reflect.New(t)
	if err := json.Unmarshal(raw, fresh.Interface()); err != nil {
		return nil, err
	}
	d.deepCopyInto(v.Elem(), fresh.Elem())
	pristine := fresh.Interface()
	d.store(t, raw, pristine)
	return pristine, nil
}

// Remember records that body is the encoding of *val (val a pointer), so
// that the next reader of the bytes just written gets a copy instead of
// decoding them. The memo keeps a copy of *val, never val itself, so the
// caller may go on changing it. The value is what was encoded, not a
// decoding of it: it may differ from json.Unmarshal's in what JSON does
// not keep (an empty slice where Unmarshal gives nil), never in what it
// encodes to.
func (d *Memo) Remember(body []byte, val any) {
	if d == nil {
		return
	}
	v := reflect.ValueOf(val)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return
	}
	pristine := reflect.New(v.Type().Elem())
	d.deepCopyInto(pristine.Elem(), v.Elem())
	d.store(v.Type().Elem(), body, pristine.Interface())
}

// deepCopyInto sets dst (settable) to a copy of src sharing no slice, map
// or pointer target that an exported field reaches. Unexported fields are
// copied as they are: in the types decoded here they belong to immutable
// values (netip.Addr, time.Time).
func (d *Memo) deepCopyInto(dst, src reflect.Value) {
	copyWith(d.planFor, d.planFor(src.Type()), dst, src)
}

// typePlan says how to deep-copy one type, worked out once per type so
// that copying does no lookups: a copy is mostly one assignment, then
// fixing up the fields that share memory.
type typePlan struct {
	t      reflect.Type
	flat   bool        // assignment is a deep copy
	elem   *typePlan   // pointer, slice, array, map value
	fields []fieldPlan // struct: the exported fields that are not flat
}

type fieldPlan struct {
	index int
	plan  *typePlan
}

func (d *Memo) planFor(t reflect.Type) *typePlan {
	if p, ok := d.plans.Load(t); ok {
		return p.(*typePlan)
	}
	p := buildPlan(t, map[reflect.Type]*typePlan{})
	d.plans.Store(t, p)
	return p
}

// buildPlan builds t's plan; building maps types being built, so that a
// recursive type refers to its own (unfinished) plan.
func buildPlan(t reflect.Type, building map[reflect.Type]*typePlan) *typePlan {
	if p, ok := building[t]; ok {
		return p
	}
	p := &typePlan{t: t}
	building[t] = p
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		p.elem = buildPlan(t.Elem(), building)
	case reflect.Interface:
		// planned from the dynamic type when copying
	case reflect.Array:
		p.elem = buildPlan(t.Elem(), building)
		p.flat = p.elem.flat
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			if fp := buildPlan(f.Type, building); !fp.flat {
				p.fields = append(p.fields, fieldPlan{i, fp})
			}
		}
		p.flat = len(p.fields) == 0
	case reflect.Chan, reflect.Func, reflect.UnsafePointer:
		p.flat = false // shared as they are; never in decoded JSON
	default:
		p.flat = true
	}
	return p
}

// copyWith sets dst to a deep copy of src, following p; planFor plans
// the dynamic types of interfaces.
func copyWith(planFor func(reflect.Type) *typePlan, p *typePlan, dst, src reflect.Value) {
	dst.Set(src)
	if !p.flat {
		fixUp(planFor, p, dst, src)
	}
}

// fixUp replaces, in dst (already a shallow copy of src), whatever still
// shares memory with src.
func fixUp(planFor func(reflect.Type) *typePlan, p *typePlan, dst, src reflect.Value) {
	switch p.t.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		n := reflect.New(p.t.Elem())
		copyWith(planFor, p.elem, n.Elem(), src.Elem())
		dst.Set(n)
	case reflect.Interface:
		if src.IsNil() {
			return
		}
		e := src.Elem()
		c := reflect.New(e.Type()).Elem()
		copyWith(planFor, planFor(e.Type()), c, e)
		dst.Set(c)
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		n := reflect.MakeSlice(p.t, src.Len(), src.Len())
		reflect.Copy(n, src)
		if !p.elem.flat {
			for i := range src.Len() {
				fixUp(planFor, p.elem, n.Index(i), src.Index(i))
			}
		}
		dst.Set(n)
	case reflect.Map:
		if src.IsNil() {
			return
		}
		m := reflect.MakeMapWithSize(p.t, src.Len())
		for it := src.MapRange(); it.Next(); {
			v := reflect.New(p.t.Elem()).Elem()
			copyWith(planFor, p.elem, v, it.Value())
			m.SetMapIndex(it.Key(), v)
		}
		dst.Set(m)
	case reflect.Array:
		for i := range src.Len() {
			fixUp(planFor, p.elem, dst.Index(i), src.Index(i))
		}
	case reflect.Struct:
		for _, f := range p.fields {
			fixUp(planFor, f.plan, dst.Field(f.index), src.Field(f.index))
		}
	}
}
