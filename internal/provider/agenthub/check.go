package agenthub

import (
	"fmt"
	"net/netip"

	"github.com/drawbridge/drawbridge/internal/jit"
	"github.com/drawbridge/drawbridge/internal/netrule"
	"github.com/drawbridge/drawbridge/internal/provider/nftables"
)

// anySource is nftables.AnySource, made once.
var anySource = nftables.AnySource()

// stateOf is SnapshotOf(d).State() without the text in between: Check runs
// on every request with every active grant of the host, thousands on a
// host many sources share, and formatting then parsing each source was
// most of its cost. It fails on the same states, with the same errors.
func stateOf(d jit.Desired) (nftables.State, error) {
	var st nftables.State
	for _, g := range d.Grants {
		if g.End.IsZero() {
			return st, fmt.Errorf("%w: grant %q has no end time", nftables.ErrInvalid, g.GrantID)
		}
	}
	for _, g := range d.Grants {
		if !g.Source.IsAny() && !g.Source.Prefix().IsValid() {
			return st, fmt.Errorf("%w: grant %q has no valid source", nftables.ErrInvalid, g.GrantID)
		}
	}
	for _, p := range d.Guarded {
		pr, err := protocolOf(p.Protocol)
		if err != nil {
			return st, fmt.Errorf("%w: guarded port %d: %v", nftables.ErrInvalid, p.Port, err)
		}
		st.Guarded = append(st.Guarded, nftables.GuardedPort{Port: p.Port, Protocol: pr})
	}
	st.Grants = make([]nftables.Grant, 0, len(d.Grants))
	for _, g := range d.Grants {
		pr, err := protocolOf(g.Protocol)
		if err != nil {
			return st, fmt.Errorf("%w: grant %q: %v", nftables.ErrInvalid, g.GrantID, err)
		}
		srcs := anySource
		if !g.Source.IsAny() {
			srcs = []netip.Prefix{g.Source.Prefix()}
		}
		for _, src := range srcs {
			st.Grants = append(st.Grants, nftables.Grant{ID: g.GrantID, Port: g.Port, Protocol: pr, Source: src, End: g.End.UTC()})
		}
	}
	return st, st.Validate()
}

// protocolOf is netrule.ParseProtocol, without lower-casing a protocol
// already in its canonical form (as the service's always is).
func protocolOf(p netrule.Protocol) (netrule.Protocol, error) {
	switch p {
	case netrule.Tcp, netrule.Udp, netrule.Any:
		return p, nil
	}
	return netrule.ParseProtocol(string(p))
}
