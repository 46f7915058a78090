// Package resource owns hierarchical resource IDs in Azure's shape
// (/subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{type}/{name}/...)
// and the scope relation between them: a scope contains every ID below it.
//
// IDs compare case-insensitively, as Azure's do, but keep the spelling they
// were given so that responses echo what the caller sent.
package resource

import (
	"errors"
	"fmt"
	"strings"
)

// ID is a parsed resource ID or scope. The zero value is invalid; "/" is the
// root scope, which contains everything.
type ID struct {
	raw   string   // as given, without a trailing slash
	segs  []string // path segments
	lower string   // lower-cased raw, for comparison
}

// Root is the scope above every subscription.
var Root = ID{raw: "/", lower: "/"}

// Parse checks that s is a resource ID or scope: "/", or it starts with
// /subscriptions/{sub}, has no empty segments, and below a "providers"
// segment names alternate between type and name.
func Parse(s string) (ID, error) {
	if s == "/" {
		return Root, nil
	}
	if s == "" {
		return ID{}, errors.New("resource ID is empty")
	}
	if !strings.HasPrefix(s, "/") {
		return ID{}, fmt.Errorf("resource ID %q must start with /subscriptions/", s)
	}
	trimmed := strings.TrimSuffix(s, "/")
	segs := strings.Split(trimmed[1:], "/")
	for _, seg := range segs {
		if seg == "" {
			return ID{}, fmt.Errorf("resource ID %q has an empty segment", s)
		}
		if strings.ContainsAny(seg, " \t\r\n?#") {
			return ID{}, fmt.Errorf("resource ID %q has an invalid character in segment %q", s, seg)
		}
	}
	if !strings.EqualFold(segs[0], "subscriptions") || len(segs) < 2 {
		return ID{}, fmt.Errorf("resource ID %q must start with /subscriptions/{subscriptionId}", s)
	}
	if len(segs) >= 3 {
		switch {
		case strings.EqualFold(segs[2], "resourceGroups"):
			if len(segs) < 4 {
				return ID{}, fmt.Errorf("resource ID %q names resourceGroups without a name", s)
			}
		case strings.EqualFold(segs[2], "providers"):
		default:
			return ID{}, fmt.Errorf("resource ID %q: expected resourceGroups or providers after the subscription, got %q", s, segs[2])
		}
	}
	if len(segs) >= 5 && !strings.EqualFold(segs[4], "providers") {
		return ID{}, fmt.Errorf("resource ID %q: expected providers after the resource group, got %q", s, segs[4])
	}
	// After "providers" comes a namespace, then type/name pairs.
	for i, seg := range segs {
		if strings.EqualFold(seg, "providers") && i >= 2 {
			rest := len(segs) - (i + 2)
			if len(segs) < i+2 {
				return ID{}, fmt.Errorf("resource ID %q names providers without a namespace", s)
			}
			if rest%2 != 0 {
				return ID{}, fmt.Errorf("resource ID %q: resource type %q has no name", s, segs[len(segs)-1])
			}
			break
		}
	}
	return ID{raw: trimmed, segs: segs, lower: strings.ToLower(trimmed)}, nil
}

// MustParse is Parse for IDs known to be valid (literals, tests).
func MustParse(s string) ID {
	id, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return id
}

// String returns the ID as given.
func (id ID) String() string { return id.raw }

// IsZero reports whether id was never set.
func (id ID) IsZero() bool { return id.raw == "" }

// Key is the canonical (lower-case) form, for maps and storage lookups.
func (id ID) Key() string { return id.lower }

// Equal compares case-insensitively.
func (id ID) Equal(other ID) bool { return id.lower == other.lower }

// Contains reports whether scope id contains other: other equals id or lies below it.
func (id ID) Contains(other ID) bool {
	if id.IsZero() || other.IsZero() {
		return false
	}
	if id.lower == "/" || id.lower == other.lower {
		return true
	}
	return strings.HasPrefix(other.lower, id.lower+"/")
}

// Subscription returns the subscription ID, or "" for the root scope.
func (id ID) Subscription() string {
	if len(id.segs) >= 2 {
		return id.segs[1]
	}
	return ""
}

// ResourceGroup returns the resource group name, or "" above one.
func (id ID) ResourceGroup() string {
	if len(id.segs) >= 4 && strings.EqualFold(id.segs[2], "resourceGroups") {
		return id.segs[3]
	}
	return ""
}

// Name returns the last segment (the resource's own name).
func (id ID) Name() string {
	if len(id.segs) == 0 {
		return ""
	}
	return id.segs[len(id.segs)-1]
}

// SubscriptionScope returns /subscriptions/{sub}.
func (id ID) SubscriptionScope() ID {
	if len(id.segs) < 2 {
		return Root
	}
	return MustParse("/" + strings.Join(id.segs[:2], "/"))
}

// ResourceGroupScope returns /subscriptions/{sub}/resourceGroups/{rg}, or the
// subscription scope if id is not inside a resource group.
func (id ID) ResourceGroupScope() ID {
	if id.ResourceGroup() == "" {
		return id.SubscriptionScope()
	}
	return MustParse("/" + strings.Join(id.segs[:4], "/"))
}

// Type returns the full resource type, e.g. "Microsoft.Compute/virtualMachines",
// or "" for a scope that is not a resource.
func (id ID) Type() string {
	for i, seg := range id.segs {
		if strings.EqualFold(seg, "providers") && i >= 2 && i+1 < len(id.segs) {
			parts := []string{id.segs[i+1]}
			for j := i + 2; j < len(id.segs); j += 2 {
				parts = append(parts, id.segs[j])
			}
			return strings.Join(parts, "/")
		}
	}
	return ""
}

// MarshalText lets IDs travel in JSON as strings.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.raw), nil }

// UnmarshalText parses an ID from JSON.
func (id *ID) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*id = ID{}
		return nil
	}
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}
