package armcompat

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/security/armsecurity"

	"github.com/drawbridge/drawbridge/internal/api"
)

// specStatus is the status each operation answers on success, from the
// REST specification (jitNetworkAccessPolicies.json, 2020-01-01). Delete
// has two: 200 deleted, 204 there was nothing to delete.
var specStatus = map[string][]int{
	"CreateOrUpdate": {200},
	"Get":            {200},
	"Delete":         {200, 204},
	"Initiate":       {202},
	"List":           {200},
}

func testStatusCodes(t *testing.T, e *env) {
	seen := map[string]bool{}
	for _, x := range e.rec.exchanges() {
		if x.status >= 300 {
			continue
		}
		seen[x.operation] = true
		if !slices.Contains(specStatus[x.operation], x.status) {
			t.Errorf("%s %s (%s) answered %d; the specification says %v", x.method, x.path, x.operation, x.status, specStatus[x.operation])
		}
	}
	for op := range specStatus {
		if !seen[op] {
			t.Errorf("no successful %s was made", op)
		}
	}
}

// enumFields are the JSON fields whose values the specification restricts,
// with the SDK's list of allowed values: never a hand-written list.
var enumFields = map[string][]string{
	"protocol":     strs(armsecurity.PossibleProtocolValues()),
	"status":       strs(armsecurity.PossibleStatusValues()),
	"statusReason": strs(armsecurity.PossibleStatusReasonValues()),
}

func strs[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// testEnums checks every enum value in every body the SDK received, and that
// the run produced each of them at least once.
func testEnums(t *testing.T, e *env) {
	seen := map[string]map[string]bool{}
	for f := range enumFields {
		seen[f] = map[string]bool{}
	}
	extensions := map[string]bool{}
	for _, x := range e.rec.exchanges() {
		if x.status >= 300 || len(x.body) == 0 {
			continue
		}
		var doc any
		if err := json.Unmarshal(x.body, &doc); err != nil {
			t.Fatalf("%s %s: %v", x.method, x.path, err)
		}
		walk(doc, "", func(path string, v any) {
			key := path[strings.LastIndex(path, ".")+1:]
			if key == "drawbridgeStatus" || key == "drawbridgeStatusReason" {
				extensions[fmt.Sprint(v)] = true
			}
			allowed, ok := enumFields[key]
			if !ok {
				return
			}
			s, _ := v.(string)
			if !slices.Contains(allowed, s) {
				t.Errorf("%s %s: %s = %v, not one of the specification's %v", x.method, x.path, path, v, allowed)
			}
			seen[key][s] = true
		})
	}
	for f, allowed := range enumFields {
		for _, v := range allowed {
			if !seen[f][v] {
				t.Errorf("%s %q never occurred: the run does not cover it", f, v)
			}
		}
	}
	// drawbridge's own states rode along as extensions.
	for _, want := range []string{"Pending", "AwaitingApproval", "PolicyRemoved"} {
		if !extensions[want] {
			t.Errorf("no drawbridgeStatus/drawbridgeStatusReason %q in any response", want)
		}
	}
}

// walk calls fn on every leaf of a JSON document, with its path ("[]" for
// an array element).
func walk(v any, path string, fn func(path string, v any)) {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			p := k
			if path != "" {
				p = path + "." + k
			}
			walk(c, p, fn)
		}
	case []any:
		for _, c := range v {
			walk(c, path+"[]", fn)
		}
	default:
		fn(path, v)
	}
}

// leaves maps each leaf path of a document to its values.
func leaves(doc any) map[string][]any {
	out := map[string][]any{}
	walk(doc, "", func(p string, v any) { out[p] = append(out[p], v) })
	return out
}

// testModelsKeepFields decodes every body the SDK received into the SDK's
// model and encodes it again: each field drawbridge sent must come back with
// its value, or be one of drawbridge's recorded extensions.
func testModelsKeepFields(t *testing.T, e *env) {
	used := map[string]bool{}
	for _, x := range e.rec.exchanges() {
		if x.status >= 300 || len(x.body) == 0 {
			continue
		}
		var model any
		var prefixes map[string]string // JSON path prefix in the body → SpecExtensions model
		switch x.operation {
		case "Initiate":
			model = &armsecurity.JitNetworkAccessRequest{}
			prefixes = map[string]string{"": "JitNetworkAccessRequest"}
		case "List":
			model = &armsecurity.JitNetworkAccessPoliciesList{}
			prefixes = map[string]string{"value[].": "JitNetworkAccessPolicy", "value[].properties.requests[].": "JitNetworkAccessRequest"}
		default:
			model = &armsecurity.JitNetworkAccessPolicy{}
			prefixes = map[string]string{"": "JitNetworkAccessPolicy", "properties.requests[].": "JitNetworkAccessRequest"}
		}
		if err := json.Unmarshal(x.body, model); err != nil {
			t.Fatalf("%s %s: the SDK model rejects the body: %v", x.method, x.path, err)
		}
		again, err := json.Marshal(model)
		if err != nil {
			t.Fatal(err)
		}
		var sent, kept any
		json.Unmarshal(x.body, &sent)
		json.Unmarshal(again, &kept)
		sentL, keptL := leaves(sent), leaves(kept)
		for path, vals := range sentL {
			if kv, ok := keptL[path]; ok {
				if !sameValues(vals, kv) {
					t.Errorf("%s %s: %s sent %v, the SDK model keeps %v", x.method, x.path, path, vals, kv)
				}
				continue
			}
			if allNull(vals) {
				continue
			}
			ext := extensionKey(path, prefixes)
			listed, ok := recorded(ext)
			if !ok {
				t.Errorf("%s %s: %s (%s) is neither in the SDK model nor in api.SpecExtensions", x.method, x.path, path, ext)
			}
			used[listed] = true
		}
	}
	// The record names nothing drawbridge does not send (input-only fields aside).
	for k := range api.SpecExtensions {
		if !used[k] && !strings.HasPrefix(k, "JitNetworkAccessPolicyInitiatePort:") && !strings.HasSuffix(k, ".provisioningError") && !strings.HasSuffix(k, ".providerError") {
			t.Errorf("api.SpecExtensions lists %s, which no response carried", k)
		}
	}
}

// extensionKey names a body path as SpecExtensions does: the model it is
// in, by the longest matching prefix, and the path inside it.
func extensionKey(path string, prefixes map[string]string) string {
	best := ""
	for p := range prefixes {
		if strings.HasPrefix(path, p) && len(p) >= len(best) {
			best = p
		}
	}
	return prefixes[best] + ":" + strings.TrimPrefix(path, best)
}

// recorded returns the SpecExtensions key that covers ext: ext itself or
// an object it is inside (requireApproval covers requireApproval.count).
func recorded(ext string) (string, bool) {
	for k := ext; ; {
		if _, ok := api.SpecExtensions[k]; ok {
			return k, true
		}
		i := strings.LastIndexAny(k, ".:")
		if i < 0 || k[i] == ':' {
			return "", false
		}
		k = k[:i]
	}
}

func allNull(vs []any) bool {
	for _, v := range vs {
		if v != nil {
			return false
		}
	}
	return true
}

// sameValues compares leaf values; times compare as instants, since the
// SDK writes them in its own format.
func sameValues(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		as, aok := a[i].(string)
		bs, bok := b[i].(string)
		if aok && bok {
			ta, errA := time.Parse(time.RFC3339Nano, as)
			tb, errB := time.Parse(time.RFC3339Nano, bs)
			if errA == nil && errB == nil {
				if !ta.Equal(tb) {
					return false
				}
				continue
			}
		}
		if !reflect.DeepEqual(a[i], b[i]) {
			return false
		}
	}
	return true
}

// TestWire checks what the SDK cannot send: other spellings, fields the
// models do not have, and api-version and page-token handling.
func TestWire(t *testing.T) {
	e := newEnv(t)
	v := vms[0]
	path := policyID(v) + "?api-version=2020-01-01"

	// Any casing of a protocol is accepted; the answer is the specification's.
	st, out := e.raw("PUT", path, `{"properties":{"virtualMachines":[{"id":"`+vmID(v)+`","ports":[
		{"number":22,"protocol":"tcp","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"},
		{"number":53,"protocol":"Udp","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"},
		{"number":3389,"protocol":"Any","allowedSourceAddressPrefix":"*","maxRequestAccessDuration":"PT3H"}]}]}}`)
	if st != 200 {
		t.Fatalf("PUT: %d %v", st, out)
	}
	var got []string
	walk(out, "", func(p string, v any) {
		if strings.HasSuffix(p, ".protocol") {
			got = append(got, v.(string))
		}
	})
	if !slices.Equal(got, []string{"TCP", "UDP", "*"}) {
		t.Errorf("protocols tcp, Udp, Any answered as %v, want [TCP UDP *]", got)
	}
	// The NSG rules keep the NSG's spelling.
	st, nsg := e.raw("GET", "/drawbridge/v1/network?vm="+vmID(v), "")
	if st != 200 || !strings.Contains(fmt.Sprint(nsg), "protocol:Tcp") {
		t.Errorf("NSG view: %d, no rule with protocol Tcp: %v", st, nsg)
	}

	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code, target             string
	}{
		// requestor is the server's to set: an initiate body naming one is refused.
		{"requestor in initiate", "POST", policyID(v) + "/initiate?api-version=2020-01-01",
			`{"requestor":"mallory","virtualMachines":[{"id":"` + vmID(v) + `","ports":[{"number":22,"endTimeUtc":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}]}]}`,
			400, "InvalidRequestContent", "requestor"},
		{"unknown api-version", "GET", policyID(v) + "?api-version=2021-01-01", "", 400, "NoRegisteredProviderFound", "api-version"},
		{"unknown api-version on a list", "GET", "/subscriptions/" + sub + "/providers/Microsoft.Security/jitNetworkAccessPolicies?api-version=2099-01-01", "", 400, "NoRegisteredProviderFound", "api-version"},
		{"forged page token", "GET", "/subscriptions/" + sub + "/providers/Microsoft.Security/jitNetworkAccessPolicies?api-version=2020-01-01&$skipToken=bm9wZQ", "", 400, "InvalidSkipToken", "$skipToken"},
	} {
		st, out := e.raw(tc.method, tc.path, tc.body)
		errBody, _ := out["error"].(map[string]any)
		if st != tc.status || errBody["code"] != tc.code || errBody["target"] != tc.target {
			t.Errorf("%s: %d %v, want %d %s naming %s", tc.name, st, out, tc.status, tc.code, tc.target)
		}
	}
	// Without api-version (drawbridge's CLI, curl): served, as 2020-01-01.
	if st, _ := e.raw("GET", policyID(v), ""); st != 200 {
		t.Errorf("GET without api-version: %d", st)
	}
	// The unknown version was refused before anything changed.
	if st, out := e.raw("DELETE", policyID(v)+"?api-version=1999-01-01", ""); st != 400 {
		t.Errorf("DELETE with an unknown api-version: %d %v", st, out)
	}
	if st, _ := e.raw("GET", path, ""); st != 200 {
		t.Errorf("the policy is gone after a refused DELETE: %d", st)
	}
}

// TestSpecExtensionsRecord keeps the record well-formed: each key names one
// of the specification's models and a path, and none is a spec field.
func TestSpecExtensionsRecord(t *testing.T) {
	models := map[string]any{
		"JitNetworkAccessPolicy":             armsecurity.JitNetworkAccessPolicy{},
		"JitNetworkAccessRequest":            armsecurity.JitNetworkAccessRequest{},
		"JitNetworkAccessPolicyInitiatePort": armsecurity.JitNetworkAccessPolicyInitiatePort{},
	}
	keys := make([]string, 0, len(api.SpecExtensions))
	for k := range api.SpecExtensions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		model, path, ok := strings.Cut(k, ":")
		if _, known := models[model]; !ok || !known || path == "" || api.SpecExtensions[k] == "" {
			t.Errorf("SpecExtensions key %q: want Model:path with a meaning, Model one of the SDK's", k)
			continue
		}
		leaf := path[strings.LastIndex(path, ".")+1:]
		if hasJSONField(reflect.TypeOf(models[model]), path) {
			t.Errorf("SpecExtensions lists %s, but the SDK model has %s", k, leaf)
		}
	}
}

// hasJSONField reports whether the SDK model type t has the field at path.
// The SDK's models name their JSON fields after their Go fields (ID → id,
// StartTimeUTC → startTimeUtc), so segments match Go names in any case.
func hasJSONField(t reflect.Type, path string) bool {
	for _, seg := range strings.Split(strings.ReplaceAll(path, "[]", ""), ".") {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return false
		}
		f, ok := t.FieldByNameFunc(func(n string) bool { return strings.EqualFold(n, seg) })
		if !ok {
			return false
		}
		t = f.Type
	}
	return true
}
