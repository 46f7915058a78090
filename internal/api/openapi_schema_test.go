package api

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/rbac"
)

// schemaGen renders JSON Schemas (2020-12, as OpenAPI 3.1 uses) of the
// Go types the handlers decode and encode, following encoding/json's rules:
// json tags, omitempty, embedded structs, TextMarshalers as strings, nil
// slices and maps as null. A response schema requires every field that is
// always written (no omitempty); a request schema requires nothing, since
// the handlers decode leniently and report missing fields themselves.
type schemaGen struct {
	defs map[string]any
}

var (
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	timeType      = reflect.TypeFor[time.Time]()
	durationType  = reflect.TypeFor[time.Duration]()
	rawMessage    = reflect.TypeFor[json.RawMessage]()
)

// handWritten are types whose MarshalJSON writes a shape of its own.
var handWritten = map[reflect.Type]func(request bool) map[string]any{
	reflect.TypeFor[rbac.RoleDefinition](): func(request bool) map[string]any {
		strs := map[string]any{"type": []any{"array", "null"}, "items": map[string]any{"type": "string"}}
		s := map[string]any{"type": "object", "properties": map[string]any{
			"Name": map[string]any{"type": "string"}, "Id": map[string]any{"type": "string"},
			"IsCustom": map[string]any{"type": "boolean"}, "Description": map[string]any{"type": "string"},
			"Actions": strs, "NotActions": strs, "DataActions": strs, "NotDataActions": strs, "AssignableScopes": strs,
		}}
		if !request {
			s["required"] = []any{"Name", "IsCustom", "Actions", "NotActions", "AssignableScopes"}
		}
		return s
	},
}

// enums are the values of string types with a closed set, in responses
// (requests are checked by the handlers, which name the bad field).
var enums = map[reflect.Type][]any{
	reflect.TypeFor[jit.Status](): {string(jit.StatusInitiated), string(jit.StatusRevoked), string(jit.StatusPending)},
	reflect.TypeFor[jit.Reason](): {string(jit.ReasonUserRequested), string(jit.ReasonExpired), string(jit.ReasonNewerRequestInitiated),
		string(jit.ReasonPolicyRemoved), string(jit.ReasonAwaitingApproval), string(jit.ReasonDenied), string(jit.ReasonApprovalLapsed)},
	reflect.TypeFor[rbac.PrincipalType](): {string(rbac.PrincipalUser), string(rbac.PrincipalGroup)},
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9_.]+`)

// name is a type's component name: package.Type, generics flattened.
func defName(t reflect.Type, request bool) string {
	n := t.String()
	n = strings.ReplaceAll(n, "github.com/drawbridge/drawbridge/internal/", "")
	n = nonWord.ReplaceAllString(n, "_")
	n = strings.Trim(n, "_")
	if request {
		n += "_input"
	}
	return n
}

func (g *schemaGen) schema(t reflect.Type, request bool) map[string]any {
	if f, ok := handWritten[t]; ok {
		return g.ref(t, request, func() map[string]any { return f(request) })
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == durationType:
		return map[string]any{"type": "integer"}
	case t == rawMessage:
		return map[string]any{}
	case t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler):
		panic(fmt.Sprintf("openapi: %s has its own MarshalJSON: add it to handWritten", t))
	case t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textMarshaler):
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		if e, ok := enums[t]; ok && !request {
			return map[string]any{"type": "string", "enum": e}
		}
		return map[string]any{"type": "string"}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Pointer:
		return map[string]any{"anyOf": []any{g.schema(t.Elem(), request), map[string]any{"type": "null"}}}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": []any{"string", "null"}, "contentEncoding": "base64"}
		}
		return map[string]any{"type": []any{"array", "null"}, "items": g.schema(t.Elem(), request)}
	case reflect.Map:
		return map[string]any{"type": []any{"object", "null"}, "additionalProperties": g.schema(t.Elem(), request)}
	case reflect.Struct:
		if t.Name() == "" {
			return g.object(t, request)
		}
		return g.ref(t, request, func() map[string]any { return g.object(t, request) })
	}
	panic(fmt.Sprintf("openapi: no schema for %s", t))
}

// ref puts a named type's schema in the components once and refers to it.
func (g *schemaGen) ref(t reflect.Type, request bool, build func() map[string]any) map[string]any {
	n := defName(t, request)
	if _, ok := g.defs[n]; !ok {
		g.defs[n] = nil // recursion guard
		g.defs[n] = build()
	}
	return map[string]any{"$ref": "#/components/schemas/" + n}
}

// object renders a struct as encoding/json writes it.
func (g *schemaGen) object(t reflect.Type, request bool) map[string]any {
	props := map[string]any{}
	var required []any
	g.fields(t, request, props, &required)
	s := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 && !request {
		s["required"] = required
	}
	return s
}

func (g *schemaGen) fields(t reflect.Type, request bool, props map[string]any, required *[]any) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				g.fields(ft, request, props, required)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.schema(f.Type, request)
		omit := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
		if !omit {
			*required = append(*required, name)
		}
	}
}
