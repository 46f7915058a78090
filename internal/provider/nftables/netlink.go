package nftables

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	nft "github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
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

// Close releases the kept netlink socket (it may wait for the kernel to
// finish destroying removed elements, see Kernel). The Kernel stays usable:
// the next call opens a new socket.
func (k *Kernel) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dropConn()
	return nil
}

// dropConn closes the kept socket, if any (k.mu held).
func (k *Kernel) dropConn() {
	if k.nc != nil {
		_ = k.nc.CloseLasting()
		k.nc, k.ncSize = nil, 0
	}
}

// conn returns the kept netlink connection, (re)opened if none is open or
// its buffers are too small for a transaction of about n elements (a
// 100k-element transaction is several MB, above the default socket
// buffer). k.mu held; the caller must not close it (dropConn does).
func (k *Kernel) conn(n int) (*nft.Conn, error) {
	size := 128*n + 1<<20
	if k.nc != nil && size <= k.ncSize {
		return k.nc, nil
	}
	k.dropConn()
	bufs := func(nc *netlink.Conn) error {
		rc, err := nc.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			// FORCE variants need CAP_NET_ADMIN, which programming
			// nftables needs anyway; fall back to the capped ones.
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size); e != nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, size)
			}
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20); e != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
			}
		}); err != nil {
			return err
		}
		return serr
	}
	opts := []nft.ConnOption{nft.AsLasting(), nft.WithSockOptions(bufs)}
	if k.opts.NetNS != 0 {
		opts = append(opts, nft.WithNetNSFd(k.opts.NetNS))
	}
	c, err := nft.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("nftables: open netlink connection: %w", err)
	}
	k.nc, k.ncSize = c, size
	return c, nil
}

func tableExists(c *nft.Conn) (bool, error) {
	ts, err := c.ListTablesOfFamily(nft.TableFamilyINet)
	if err != nil {
		return false, fmt.Errorf("nftables: list inet tables: %w", err)
	}
	for _, t := range ts {
		if t.Name == TableName {
			return true, nil
		}
	}
	return false, nil
}

// objects are the Go descriptions of the table, chain, sets and rules.
type objects struct {
	table *nft.Table
	chain *nft.Chain
	guard map[uint8]*nft.Set
	allow map[setID]*nft.Set
}

func newObjects() *objects {
	t := &nft.Table{Name: TableName, Family: nft.TableFamilyINet}
	policy := nft.ChainPolicyAccept
	o := &objects{
		table: t,
		chain: &nft.Chain{
			Name:     ChainName,
			Table:    t,
			Type:     nft.ChainTypeFilter,
			Hooknum:  nft.ChainHookInput,
			Priority: nft.ChainPriorityRef(ChainPriority),
			Policy:   &policy,
		},
		guard: map[uint8]*nft.Set{},
		allow: map[setID]*nft.Set{},
	}
	for _, pr := range []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
		o.guard[pr] = &nft.Set{Table: t, Name: "guard_" + protoName(pr), KeyType: nft.TypeInetService}
	}
	for _, id := range allowSets {
		addr := nft.TypeIPAddr
		if id.v6 {
			addr = nft.TypeIP6Addr
		}
		o.allow[id] = &nft.Set{
			Table:         t,
			Name:          id.name(),
			KeyType:       nft.MustConcatSetType(addr, nft.TypeInetService),
			Interval:      !id.single,
			Concatenation: true,
			HasTimeout:    true,
		}
	}
	return o
}

func (o *objects) sets() []*nft.Set {
	var out []*nft.Set
	for _, pr := range []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
		out = append(out, o.guard[pr])
	}
	for _, id := range allowSets {
		out = append(out, o.allow[id])
	}
	return out
}

// ruleTags names the rules in order; each rule carries its tag as a comment
// so a later Apply can tell whether the chain is what this version writes.
func (o *objects) ruleTags() []string {
	var tags []string
	for _, r := range o.rules() {
		s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		tags = append(tags, s)
	}
	return tags
}

func (o *objects) rules() []*nft.Rule {
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	rule := func(tag string, es ...expr.Any) *nft.Rule {
		return &nft.Rule{
			Table:    o.table,
			Chain:    o.chain,
			Exprs:    es,
			UserData: userdata.AppendString(nil, userdata.TypeComment, "drawbridge:v1:"+tag),
		}
	}
	rs := []*nft.Rule{
		// iif "lo" accept (the loopback is ifindex 1 in every namespace)
		rule("lo",
			&expr.Meta{Key: expr.MetaKeyIIF, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(1)},
			accept),
		// ct state established,related accept
		rule("ct",
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
				Xor:  binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
			accept),
	}
	for _, id := range allowSets {
		nfproto, off, alen, portReg := byte(unix.NFPROTO_IPV4), uint32(12), uint32(4), uint32(9)
		if id.v6 {
			nfproto, off, alen, portReg = unix.NFPROTO_IPV6, 8, 16, 12
		}
		s := o.allow[id]
		// meta nfproto X meta l4proto P ip(6) saddr . th dport @allowX_P accept
		// Concatenations use the 32-bit registers from NFT_REG32_00 (8).
		rs = append(rs, rule(s.Name,
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{nfproto}},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{id.proto}},
			&expr.Payload{DestRegister: 8, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: alen},
			&expr.Payload{DestRegister: portReg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 8, SetName: s.Name, SetID: s.ID},
			accept))
	}
	for _, pr := range []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
		s := o.guard[pr]
		// meta l4proto P th dport @guard_P drop
		rs = append(rs, rule(s.Name,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{pr}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
			drop))
	}
	return rs
}

func ruleTags(c *nft.Conn, o *objects) ([]string, error) {
	chains, err := c.ListChainsOfTableFamily(nft.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("nftables: list inet chains: %w", err)
	}
	found := false
	for _, ch := range chains {
		if ch.Table.Name == TableName && ch.Name == ChainName {
			found = true
		}
	}
	if !found {
		return nil, nil
	}
	rules, err := c.GetRules(o.table, o.chain)
	if err != nil {
		return nil, fmt.Errorf("nftables: list rules of inet %s %s: %w", TableName, ChainName, err)
	}
	var tags []string
	for _, r := range rules {
		s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		tags = append(tags, s)
	}
	return tags, nil
}

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
