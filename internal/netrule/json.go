package netrule

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// AppendJSON appends n's JSON encoding, byte for byte what json.Marshal(n)
// gives (TestNSGAppendJSONMatchesMarshal), without reflection: the
// simulated network writes an NSG back on every request. A nil n is null.
func (n *NSG) AppendJSON(b []byte) []byte {
	if n == nil {
		return append(b, "null"...)
	}
	b = append(b, `{"id":`...)
	b = appendString(b, n.ID)
	b = append(b, `,"name":`...)
	b = appendString(b, n.Name)
	if n.Location != "" {
		b = append(b, `,"location":`...)
		b = appendString(b, n.Location)
	}
	b = append(b, `,"securityRules":`...)
	if n.SecurityRules == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range n.SecurityRules {
			if i > 0 {
				b = append(b, ',')
			}
			b = n.SecurityRules[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func (r *SecurityRule) appendJSON(b []byte) []byte {
	b = append(b, `{"name":`...)
	b = appendString(b, r.Name)
	b = appendOptString(b, `,"description":`, r.Description)
	b = append(b, `,"priority":`...)
	b = strconv.AppendInt(b, int64(r.Priority), 10)
	b = append(b, `,"direction":`...)
	b = appendString(b, string(r.Direction))
	b = append(b, `,"access":`...)
	b = appendString(b, string(r.Access))
	b = append(b, `,"protocol":`...)
	b = appendString(b, string(r.Protocol))
	b = appendOptString(b, `,"sourceAddressPrefix":`, r.SourceAddressPrefix)
	b = appendOptStrings(b, `,"sourceAddressPrefixes":`, r.SourceAddressPrefixes)
	b = appendOptString(b, `,"sourcePortRange":`, r.SourcePortRange)
	b = appendOptStrings(b, `,"sourcePortRanges":`, r.SourcePortRanges)
	b = appendOptString(b, `,"destinationAddressPrefix":`, r.DestinationAddressPrefix)
	b = appendOptStrings(b, `,"destinationAddressPrefixes":`, r.DestinationAddressPrefixes)
	b = appendOptString(b, `,"destinationPortRange":`, r.DestinationPortRange)
	b = appendOptStrings(b, `,"destinationPortRanges":`, r.DestinationPortRanges)
	return append(b, '}')
}

// appendOptString is an omitempty string field.
func appendOptString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

// appendOptStrings is an omitempty []string field.
func appendOptStrings(b []byte, key string, ss []string) []byte {
	if len(ss) == 0 {
		return b
	}
	b = append(b, key...)
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendString appends s as json.Marshal quotes it. Printable ASCII other
// than the characters it escapes (quote, backslash, and <, > and & for
// HTML) is copied as it is; anything else, rare in rule fields, goes
// through json.Marshal itself.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
