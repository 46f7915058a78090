// Package nftables enforces JIT access on a Linux host with nftables, talking
// netlink through github.com/google/nftables (it never execs the nft binary).
//
// # What it owns
//
// Exactly one table, "inet drawbridge", and nothing else: no other table,
// chain, set or rule on the host is read-modify-written, flushed or deleted.
// The table holds:
//
//	chain input { type filter hook input priority filter - 10; policy accept;
//	    iif "lo" accept                                  # local traffic is not inbound
//	    ct state established,related accept              # grants end, connections live on
//	    ip saddr . tcp dport @allow4_tcp_addr accept     # single-address grants (hash set)
//	    ip saddr . tcp dport @allow4_tcp_net accept      # prefix grants (interval set)
//	    ... the same for udp and for ip6 saddr ...
//	    tcp dport @guard_tcp drop
//	    udp dport @guard_udp drop
//	}
//
// Priority filter-10 (-10) runs the chain just before the usual filter chains
// (priority 0, e.g. a host's "inet filter" or iptables-nft), so JIT denies a
// guarded port even when the host firewall would accept it. The policy is
// accept and an accept verdict only ends this chain: the packet still meets
// every other base chain on the hook, so a stricter host firewall still wins.
// Unguarded ports pass through untouched.
//
// Grants are elements of the allow sets, keyed by (source . port) with the
// timeout flag. A single-address source (/32, /128) goes to an "_addr" hash
// set: O(1) insert and lookup, so 100k grants cost little. A wider prefix
// goes to a "_net" set with the interval and concatenation flags (a kernel
// "pipapo" set; google/nftables v0.3.0 writes concatenated intervals through
// SetElement.KeyEnd), keyed by (source range . port).
// Every element carries a kernel timeout equal to the grant's end time minus
// now, so the kernel removes it at the end time by itself, even if no
// drawbridge process is alive. Guarded ports are elements of guard_tcp and
// guard_udp (no timeout: JIT stays on until disabled).
//
// # Overlapping grants
//
// The kernel refuses overlapping intervals in one set, and two prefix grants
// may overlap (198.18.0.0/24 and 198.18.0.0/25 on port 22, or the same prefix
// twice with different end times). Apply therefore writes, per (family,
// protocol, port), the disjoint address ranges of the union of the prefix
// grants, each with the latest end time of the grants covering it; adjacent
// ranges with the same end are merged. Without overlap this is exactly one
// element per grant, whose range is the grant's prefix. Single addresses
// live in their own set, so they never split a prefix; the same address
// twice keeps the latest end. Observe reads ranges back and reports each as
// the CIDR prefixes that cover it exactly (so a range that is one address
// comes back as a /32 grant, which a later Apply moves to the _addr set).
//
// # Timeouts
//
// A kernel timeout counts from the moment the kernel inserts the element.
// Apply reads the clock just before encoding the elements, so an element
// closes at its end time plus the transaction's send-and-insert time
// (microseconds for a few grants; for a 100k-grant Apply, up to that Apply's
// duration). Timeouts are truncated to the millisecond.
//
// # Identity of grants in the kernel
//
// Grant IDs do not reach the kernel: an element's identity is (family,
// protocol, port, first address, last address) and its only other attribute
// is its remaining timeout. Observe returns grants with an empty ID; use
// Enforced to learn which desired grant IDs the kernel enforces.
package nftables

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/drawbridge/drawbridge/internal/netrule"
)

// Firewall keeps one host's JIT table equal to a desired State.
//
// Implementations are safe for concurrent use; calls are serialised.
type Firewall interface {
	// Apply makes the kernel enforce st.
	//
	// It validates st first and returns an error without touching the kernel
	// if any guarded port or grant is invalid (see State.Validate).
	// It creates the table, chain, sets and rules if they are missing and
	// rewrites the chain's rules (atomically, elements untouched) if they
	// differ from what this version writes. It then adds the elements st
	// needs that are missing, with a kernel timeout of End minus now, deletes
	// the elements st does not want (an early revoke takes effect at once),
	// and replaces an element whose end time differs from the desired one by
	// more than the tolerance. Grants whose End is not in the future are not
	// added. All of this is one netlink transaction: the kernel sees the old
	// state or the new one, never a mix. It never flushes the table or a
	// set, so established connections (conntrack) and unchanged elements are
	// not disturbed. Applying the same st twice changes nothing the second
	// time. A State with no Guarded ports and no Grants still leaves the
	// (empty) table in place; use Disable to remove it.
	//
	// A kernel refusal is returned as an error naming the operation.
	Apply(ctx context.Context, st State) error

	// Observe reads the table back: the guarded ports (one entry per
	// protocol, never netrule.Any) and one Grant per CIDR prefix of each
	// element, with an empty ID and End = now + the element's remaining
	// timeout (now from the Firewall's clock). A missing table is the empty
	// State and no error. It changes nothing.
	Observe(ctx context.Context) (State, error)

	// Disable deletes the drawbridge table and everything in it: nothing of
	// drawbridge remains in the kernel. It is idempotent (no table, no
	// error) and touches no other table. Established connections stay up.
	Disable(ctx context.Context) error
}

// State is what the JIT table enforces on one host.
type State struct {
	// Guarded ports are denied to new inbound connections unless a grant
	// allows them.
	Guarded []GuardedPort
	// Grants each allow new connections from Source to Port until End.
	Grants []Grant
}

// GuardedPort is a port JIT protects. Protocol is netrule.Tcp, netrule.Udp
// or netrule.Any (both).
type GuardedPort struct {
	Port     int
	Protocol netrule.Protocol
}

// Grant is one allowance. Protocol is netrule.Tcp, netrule.Udp or
// netrule.Any (both). Source is an IPv4 or IPv6 prefix (a single address is
// its full-length prefix; host bits are masked off); the "*" source is two
// grants, 0.0.0.0/0 and ::/0 (see AnySource). A grant need not name a guarded
// port: it then allows what is not denied anyway.
type Grant struct {
	// ID is the grant's identity in the JIT service. It is not stored in
	// the kernel and is empty in Observe's result.
	ID       string
	Port     int
	Protocol netrule.Protocol
	Source   netip.Prefix
	End      time.Time
}

// AnySource returns the prefixes that make up the "*" source.
func AnySource() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
}

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid nftables state")

// Validate reports the first invalid guarded port or grant: a port outside
// 1..65535, a protocol other than Tcp, Udp or *, an invalid or zoned source
// prefix, an IPv4-mapped IPv6 source, or a zero end time.
func (st State) Validate() error {
	for i, g := range st.Guarded {
		if err := checkPortProto(g.Port, g.Protocol); err != nil {
			return fmt.Errorf("%w: guarded port %d: %v", ErrInvalid, i, err)
		}
	}
	for i, g := range st.Grants {
		if err := checkPortProto(g.Port, g.Protocol); err != nil {
			return fmt.Errorf("%w: grant %d (%q): %v", ErrInvalid, i, g.ID, err)
		}
		if !g.Source.IsValid() {
			return fmt.Errorf("%w: grant %d (%q): source %v is not a valid prefix", ErrInvalid, i, g.ID, g.Source)
		}
		if g.Source.Addr().Zone() != "" {
			return fmt.Errorf("%w: grant %d (%q): source %v has a zone", ErrInvalid, i, g.ID, g.Source)
		}
		if g.Source.Addr().Is4In6() {
			return fmt.Errorf("%w: grant %d (%q): source %v is IPv4-mapped; use the IPv4 form", ErrInvalid, i, g.ID, g.Source)
		}
		if g.End.IsZero() {
			return fmt.Errorf("%w: grant %d (%q): no end time", ErrInvalid, i, g.ID)
		}
	}
	return nil
}

func checkPortProto(port int, p netrule.Protocol) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("port %d is outside 1..65535", port)
	}
	switch p {
	case netrule.Tcp, netrule.Udp, netrule.Any:
		return nil
	}
	return fmt.Errorf("protocol %q is not Tcp, Udp or *", p)
}
