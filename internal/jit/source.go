package jit

import (
	"fmt"
	"net/netip"
	"strings"
)

// Source is where access may come from: any address ("*") or one prefix.
// A single address is the prefix of its full length (/32, /128).
type Source struct {
	any    bool
	prefix netip.Prefix
}

// AnySource matches every address.
var AnySource = Source{any: true}

// SourceFromAddr returns the single-address source for a.
func SourceFromAddr(a netip.Addr) Source {
	a = a.Unmap()
	return Source{prefix: netip.PrefixFrom(a, a.BitLen())}
}

// ParseSource accepts "*" (also "Any" and "Internet"), an IPv4 or IPv6
// address, or a CIDR prefix without host bits.
func ParseSource(s string) (Source, error) {
	t := strings.TrimSpace(s)
	switch strings.ToLower(t) {
	case "*", "any", "internet":
		return AnySource, nil
	case "":
		return Source{}, fmt.Errorf("source is empty")
	}
	if strings.Contains(t, "/") {
		p, err := netip.ParsePrefix(t)
		if err != nil {
			return Source{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
		}
		if p.Addr().Is4In6() {
			return Source{}, fmt.Errorf("%q: use the plain IPv4 form", s)
		}
		if p.Masked() != p {
			return Source{}, fmt.Errorf("%q has host bits set; the prefix is %s", s, p.Masked())
		}
		return Source{prefix: p}, nil
	}
	a, err := netip.ParseAddr(t)
	if err != nil {
		return Source{}, fmt.Errorf("%q is not an IP address or CIDR prefix", s)
	}
	if a.Zone() != "" {
		return Source{}, fmt.Errorf("%q: zoned addresses are not allowed", s)
	}
	return SourceFromAddr(a), nil
}

// IsAny reports whether the source matches every address.
func (s Source) IsAny() bool { return s.any }

// IsZero reports whether the source was never set.
func (s Source) IsZero() bool { return !s.any && !s.prefix.IsValid() }

// Prefix returns the prefix; invalid for the any source.
func (s Source) Prefix() netip.Prefix { return s.prefix }

// Contains reports whether every address of o is also in s.
func (s Source) Contains(o Source) bool {
	switch {
	case s.any:
		return true
	case o.any:
		return false
	}
	return s.prefix.Addr().BitLen() == o.prefix.Addr().BitLen() &&
		s.prefix.Bits() <= o.prefix.Bits() && s.prefix.Contains(o.prefix.Addr())
}

// String returns "*", a bare address for a full-length prefix, or a CIDR.
func (s Source) String() string {
	switch {
	case s.any:
		return "*"
	case !s.prefix.IsValid():
		return ""
	case s.prefix.IsSingleIP():
		return s.prefix.Addr().String()
	}
	return s.prefix.String()
}

func (s Source) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s *Source) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*s = Source{}
		return nil
	}
	v, err := ParseSource(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
