package nftables

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	nft "github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/drawbridge/drawbridge/internal/clock"
)

// Names of the kernel objects drawbridge owns.
const (
	TableName = "drawbridge"
	ChainName = "input"
	// ChainPriority is filter-10: just before the usual filter chains.
	ChainPriority = -10
)

// DefaultTolerance is how far an element's kernel end time may be from the
// desired end before Apply rewrites it.
const DefaultTolerance = 100 * time.Millisecond

// maxElemsPerMsg bounds one NEWSETELEM/DELSETELEM message: the element list
// is one netlink attribute, whose length is 16 bits (64 KiB), and an IPv6
// interval element with a timeout takes about 72 bytes. A transaction holds
// as many messages as it needs.
const maxElemsPerMsg = 512

// Options configure a Kernel firewall.
type Options struct {
	// NetNS, if set, is an open file descriptor of the network namespace to
	// program (as for nftables.WithNetNSFd). Zero means the caller's own
	// namespace. The caller keeps it open while the Kernel is used.
	NetNS int
	// Clock gives "now" for timeouts and Observe's end times; default real.
	Clock clock.Clock
	// Tolerance: see DefaultTolerance.
	Tolerance time.Duration
}

// Kernel is the Firewall that programs the Linux kernel over netlink.
//
// Between calls it remembers what it last wrote (less what has expired
// since) and diffs against that instead of dumping every element again
// (a dump of 100k interval elements costs the kernel over a second). It
// reads the kernel again on its first call, after any error, and on
// Observe, which always reads the kernel and refreshes the memory. If
// someone else edits the drawbridge table, the next failing Apply (or an
// Observe) resynchronises.
//
// It also keeps one netlink socket open between calls (Close releases it).
// Closing an nfnetlink socket is slow after a transaction that removed
// anything: the kernel's NETLINK_URELEASE handler (nft_rcv_nl_event) waits
// for the deferred destruction of the removed objects, i.e. for an RCU
// grace period (8-24 ms measured, in jiffies). With a socket per call every
// Apply that deleted an element (a superseded or revoked grant) paid that
// wait before returning; on a kept socket the destruction runs in the
// background and the same Apply takes ~0.1 ms. The socket is reopened after
// any error (no stale replies) and when a larger transaction needs bigger
// buffers.
type Kernel struct {
	mu    sync.Mutex
	opts  Options
	cache *plan // nil: unknown, read the kernel

	nc     *nft.Conn // kept netlink socket, nil: none open
	ncSize int       // its send buffer size
}

var _ Firewall = (*Kernel)(nil)

// NewKernel returns a Firewall that programs the kernel. It does not touch
// the kernel until the first call.
func NewKernel(opts Options) *Kernel {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Tolerance <= 0 {
		opts.Tolerance = DefaultTolerance
	}
	return &Kernel{opts: opts}
}

// Apply implements Firewall.
func (k *Kernel) Apply(ctx context.Context, st State) error {
	if err := st.Validate(); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	// An element may expire between our read and our delete of it, which
	// fails the transaction with ENOENT: read again and retry, a bounded
	// number of times.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = ctx.Err(); err != nil {
			return err
		}
		err = k.apply(st)
		if err == nil {
			return nil
		}
		k.cache = nil
		k.dropConn()
		if !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return err
}

func (k *Kernel) apply(st State) error {
	now := k.opts.Clock.Now()
	want := buildPlan(st, now)
	n := 0
	for _, es := range want.allow {
		n += len(es)
	}
	c, err := k.conn(n)
	if err != nil {
		return err
	}
	o := newObjects()
	have, err := k.current(c, o, now)
	if err != nil {
		return err
	}
	if err := queueGuardChanges(c, o, have, want); err != nil {
		return err
	}
	next, nAdd, nDel, err := k.queueGrantChanges(c, o, have, want)
	if err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: apply transaction on inet %s (%d element adds, %d deletes): %w", TableName, nAdd, nDel, err)
	}
	k.cache = &next
	return nil
}

// current returns what the kernel holds: what we last wrote, minus what
// the kernel has expired since, or else what syncObjects reads.
func (k *Kernel) current(c *nft.Conn, o *objects, now time.Time) (plan, error) {
	if k.cache != nil {
		return k.cache.live(now), nil
	}
	return syncObjects(c, o, now)
}

// syncObjects queues on c whatever of the table, chain, sets and rules is
// missing or differs from what this version writes, and returns the
// elements the kernel holds (none when the table did not exist).
func syncObjects(c *nft.Conn, o *objects, now time.Time) (plan, error) {
	have := plan{guard: map[uint8][]uint16{}, allow: map[setID][]elem{}}
	exists, err := tableExists(c)
	if err != nil {
		return plan{}, err
	}
	c.AddTable(o.table)
	c.AddChain(o.chain)
	if !exists {
		for _, s := range o.sets() {
			if err := c.AddSet(s, nil); err != nil {
				return plan{}, fmt.Errorf("nftables: add set %s: %w", s.Name, err)
			}
		}
		for _, r := range o.rules() {
			c.AddRule(r)
		}
		return have, nil
	}
	sets, err := c.GetSets(o.table)
	if err != nil {
		return plan{}, fmt.Errorf("nftables: list sets of inet %s: %w", TableName, err)
	}
	present := map[string]bool{}
	for _, s := range sets {
		present[s.Name] = true
	}
	for _, s := range o.sets() {
		if !present[s.Name] {
			if err := c.AddSet(s, nil); err != nil {
				return plan{}, fmt.Errorf("nftables: add set %s: %w", s.Name, err)
			}
		}
	}
	tags, err := ruleTags(c, o)
	if err != nil {
		return plan{}, err
	}
	if !slices.Equal(tags, o.ruleTags()) {
		c.FlushChain(o.chain)
		for _, r := range o.rules() {
			c.AddRule(r)
		}
	}
	return readPlan(c, o, present, now)
}

// queueGuardChanges queues the guarded-port changes from have to want.
func queueGuardChanges(c *nft.Conn, o *objects, have, want plan) error {
	for _, pr := range []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
		s := o.guard[pr]
		del, add := diffPorts(have.guard[pr], want.guard[pr])
		if err := chunked(c.SetDeleteElements, s, portElems(del)); err != nil {
			return fmt.Errorf("nftables: delete guarded ports from %s: %w", s.Name, err)
		}
		if err := chunked(c.SetAddElements, s, portElems(add)); err != nil {
			return fmt.Errorf("nftables: add guarded ports to %s: %w", s.Name, err)
		}
	}
	return nil
}

// queueGrantChanges queues the grant element changes from have to want and
// returns what the kernel will hold once the transaction commits, with the
// number of element adds and deletes queued.
func (k *Kernel) queueGrantChanges(c *nft.Conn, o *objects, have, want plan) (next plan, nAdd, nDel int, err error) {
	next = plan{guard: want.guard, allow: map[setID][]elem{}}
	type change struct {
		id       setID
		del, add []elem
	}
	var changes []change
	for _, id := range allowSets {
		del, add, kept := diffElems(have.allow[id], want.allow[id], k.opts.Tolerance)
		nAdd += len(add)
		nDel += len(del)
		changes = append(changes, change{id, del, add})
		next.allow[id] = kept
	}
	// Kernel timeouts count from insertion: take "now" as late as possible.
	wnow := k.opts.Clock.Now()
	for _, ch := range changes {
		s := o.allow[ch.id]
		if err := chunked(c.SetDeleteElements, s, grantElems(ch.del, ch.id.single, wnow)); err != nil {
			return plan{}, 0, 0, fmt.Errorf("nftables: delete elements from %s: %w", s.Name, err)
		}
		if err := chunked(c.SetAddElements, s, grantElems(ch.add, ch.id.single, wnow)); err != nil {
			return plan{}, 0, 0, fmt.Errorf("nftables: add elements to %s: %w", s.Name, err)
		}
	}
	return next, nAdd, nDel, nil
}

// live is p without the elements whose end has passed.
func (p plan) live(now time.Time) plan {
	out := plan{guard: p.guard, allow: map[setID][]elem{}}
	for id, es := range p.allow {
		for _, e := range es {
			if e.end.After(now) {
				out.allow[id] = append(out.allow[id], e)
			}
		}
	}
	return out
}

// Observe implements Firewall.
func (k *Kernel) Observe(ctx context.Context) (State, error) {
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	c, err := k.conn(0)
	if err != nil {
		return State{}, err
	}
	k.cache = nil
	exists, err := tableExists(c)
	if err != nil || !exists {
		if err != nil {
			k.dropConn()
		}
		return State{}, err
	}
	o := newObjects()
	sets, err := c.GetSets(o.table)
	if err != nil {
		k.dropConn()
		return State{}, fmt.Errorf("nftables: list sets of inet %s: %w", TableName, err)
	}
	present := map[string]bool{}
	for _, s := range sets {
		present[s.Name] = true
	}
	p, err := readPlan(c, o, present, k.opts.Clock.Now())
	if err != nil {
		k.cache = nil
		k.dropConn()
		return State{}, err
	}
	if tags, err := ruleTags(c, o); err == nil && slices.Equal(tags, o.ruleTags()) && len(present) == len(o.sets()) {
		k.cache = &p // otherwise the structure needs repair: Apply reads again
	}
	return stateOf(p), nil
}

// Disable implements Firewall.
func (k *Kernel) Disable(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	c, err := k.conn(0)
	if err != nil {
		return err
	}
	k.cache = nil
	exists, err := tableExists(c)
	if err != nil || !exists {
		if err != nil {
			k.dropConn()
		}
		return err
	}
	c.DelTable(newObjects().table)
	if err := c.Flush(); err != nil {
		k.dropConn()
		if errors.Is(err, unix.ENOENT) {
			return nil // deleted meanwhile
		}
		return fmt.Errorf("nftables: delete table inet %s: %w", TableName, err)
	}
	return nil
}
