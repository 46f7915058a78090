package nftables

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	nft "github.com/google/nftables"
)

// readPlan reads the elements of the sets that exist.
func readPlan(c *nft.Conn, o *objects, present map[string]bool, now time.Time) (plan, error) {
	p := plan{guard: map[uint8][]uint16{}, allow: map[setID][]elem{}}
	for pr, s := range o.guard {
		if !present[s.Name] {
			continue
		}
		els, err := c.GetSetElements(s)
		if err != nil {
			return p, fmt.Errorf("nftables: list elements of %s: %w", s.Name, err)
		}
		for _, e := range els {
			if len(e.Key) == 2 {
				p.guard[pr] = append(p.guard[pr], binary.BigEndian.Uint16(e.Key))
			}
		}
		slices.Sort(p.guard[pr])
	}
	for id, s := range o.allow {
		if !present[s.Name] {
			continue
		}
		els, err := c.GetSetElements(s)
		if err != nil {
			return p, fmt.Errorf("nftables: list elements of %s: %w", s.Name, err)
		}
		for _, e := range els {
			if e.IntervalEnd {
				continue
			}
			first, port, ok := decodeKey(e.Key, id.v6)
			if !ok {
				continue
			}
			last := first
			if len(e.KeyEnd) > 0 {
				if last, _, ok = decodeKey(e.KeyEnd, id.v6); !ok {
					continue
				}
			}
			if e.Timeout == 0 {
				// Not ours (every element drawbridge writes has a
				// timeout); report it as far in the future so it is
				// visible and deleted if undesired.
				e.Expires = 100 * 365 * 24 * time.Hour
			}
			p.allow[id] = append(p.allow[id], elem{port, first, last, now.Add(e.Expires)})
		}
		slices.SortFunc(p.allow[id], compareElem)
	}
	return p, nil
}

// Key layout of a concatenation: each field padded to 4 bytes.
func encodeKey(a netip.Addr, port uint16) []byte {
	b := a.AsSlice()
	b = binary.BigEndian.AppendUint16(b, port)
	return append(b, 0, 0)
}

func decodeKey(b []byte, v6 bool) (netip.Addr, uint16, bool) {
	n := 4
	if v6 {
		n = 16
	}
	if len(b) < n+2 {
		return netip.Addr{}, 0, false
	}
	a, _ := netip.AddrFromSlice(b[:n])
	return a, binary.BigEndian.Uint16(b[n : n+2]), true
}

// grantElems encodes elements; a kernel timeout is relative to the moment
// the kernel inserts the element, so now should be read just before sending.
func grantElems(es []elem, single bool, now time.Time) []nft.SetElement {
	out := make([]nft.SetElement, 0, len(es))
	for _, e := range es {
		se := nft.SetElement{
			Key:     encodeKey(e.first, e.port),
			Timeout: e.end.Sub(now).Truncate(time.Millisecond),
		}
		if se.Timeout < time.Millisecond {
			// Ended while we were working (a zero timeout would mean
			// "never" to the kernel).
			se.Timeout = time.Millisecond
		}
		if !single {
			se.KeyEnd = encodeKey(e.last, e.port)
		}
		out = append(out, se)
	}
	return out
}

func portElems(ports []uint16) []nft.SetElement {
	out := make([]nft.SetElement, 0, len(ports))
	for _, p := range ports {
		out = append(out, nft.SetElement{Key: binary.BigEndian.AppendUint16(nil, p)})
	}
	return out
}

func chunked(f func(*nft.Set, []nft.SetElement) error, s *nft.Set, es []nft.SetElement) error {
	for len(es) > 0 {
		n := min(len(es), maxElemsPerMsg)
		if err := f(s, es[:n]); err != nil {
			return err
		}
		es = es[n:]
	}
	return nil
}

func diffPorts(have, want []uint16) (del, add []uint16) {
	for _, p := range have {
		if _, ok := slices.BinarySearch(want, p); !ok {
			del = append(del, p)
		}
	}
	for _, p := range want {
		if _, ok := slices.BinarySearch(have, p); !ok {
			add = append(add, p)
		}
	}
	return del, add
}

// diffElems: an element is kept if the same range on the same port exists
// with an end within tol of the desired one; otherwise the old one is
// deleted and the new one added (in the same transaction). have and want
// are sorted by compareElem; so are the results. kept is want with the ends
// of the kept elements as the kernel has them.
func diffElems(have, want []elem, tol time.Duration) (del, add, kept []elem) {
	kept = make([]elem, 0, len(want))
	i, j := 0, 0
	for i < len(have) || j < len(want) {
		var c int
		switch {
		case i == len(have):
			c = 1
		case j == len(want):
			c = -1
		default:
			c = compareElem(have[i], want[j])
		}
		switch {
		case c < 0:
			del = append(del, have[i])
			i++
		case c > 0:
			add = append(add, want[j])
			kept = append(kept, want[j])
			j++
		default:
			if have[i].end.Sub(want[j].end).Abs() > tol {
				del = append(del, have[i])
				add = append(add, want[j])
				kept = append(kept, want[j])
			} else {
				kept = append(kept, have[i])
			}
			i++
			j++
		}
	}
	return del, add, kept
}
