package nftables

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Change is one nftables transaction, made by another process, that touched
// the drawbridge table: deleted or flushed it (a `flush ruleset` deletes
// every table), or added or removed its chains, rules, sets or elements.
type Change struct {
	// PID and Comm name the process that committed the transaction (as the
	// kernel reports it: the sending thread's ID and its command name).
	PID  uint32
	Comm string
	// Events counts what the transaction did to the table, by kind
	// ("delete table", "delete rule", "add element", ...).
	Events map[string]int
	// Lost is set instead when the kernel dropped notifications (the
	// socket's buffer overflowed): the table may have changed unseen.
	Lost bool
}

// String describes the change for logs and audit records.
func (c Change) String() string {
	if c.Lost {
		return "nftables notifications lost; the table may have changed"
	}
	kinds := make([]string, 0, len(c.Events))
	for k, n := range c.Events {
		kinds = append(kinds, fmt.Sprintf("%s x%d", k, n))
	}
	sort.Strings(kinds)
	return fmt.Sprintf("%s by %s[%d]", strings.Join(kinds, ", "), c.Comm, c.PID)
}

// eventNames are the notifications Watch reports, by nftables message type.
var eventNames = map[uint16]string{
	unix.NFT_MSG_NEWTABLE: "add table", unix.NFT_MSG_DELTABLE: "delete table",
	unix.NFT_MSG_NEWCHAIN: "add chain", unix.NFT_MSG_DELCHAIN: "delete chain",
	unix.NFT_MSG_NEWRULE: "add rule", unix.NFT_MSG_DELRULE: "delete rule",
	unix.NFT_MSG_NEWSET: "add set", unix.NFT_MSG_DELSET: "delete set",
	unix.NFT_MSG_NEWSETELEM: "add element", unix.NFT_MSG_DELSETELEM: "delete element",
}

// Watch subscribes to the nftables notifications (the NFNLGRP_NFTABLES
// netlink group) of the network namespace netns (an open fd, 0 for the
// caller's) and calls fn, in order, for every committed transaction that
// touched the drawbridge table and was not made by this process. Nothing
// is polled: the kernel pushes each transaction's changes followed by its
// generation message, which names the committing process. Element expiry
// sends no notification. It returns when ctx ends (nil) or the socket
// fails. ready, if not nil, is closed once the subscription is in place.
func Watch(ctx context.Context, netns int, ready chan<- struct{}, fn func(Change)) error {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return fmt.Errorf("nftables: watch: %w", err)
	}
	defer c.Close()
	if err := c.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		return fmt.Errorf("nftables: watch: join NFNLGRP_NFTABLES: %w", err)
	}
	// Our own large transactions notify one message per element: a big
	// buffer keeps them from overflowing it (an overflow is reported as Lost).
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
			}
		})
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if ready != nil {
		close(ready)
	}
	events := map[string]int{}
	for {
		msgs, err := c.Receive()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, unix.ENOBUFS) {
				events = map[string]int{}
				fn(Change{Lost: true})
				continue
			}
			return fmt.Errorf("nftables: watch: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type>>8 != unix.NFNL_SUBSYS_NFTABLES || len(m.Data) < 4 {
				continue
			}
			typ := uint16(m.Header.Type & 0xff)
			if typ == unix.NFT_MSG_NEWGEN {
				pid, comm := genInfo(m.Data[4:])
				if len(events) > 0 && !ownThread(pid) {
					fn(Change{PID: pid, Comm: comm, Events: events})
				}
				events = map[string]int{}
				continue
			}
			name, ok := eventNames[typ]
			if !ok || m.Data[0] != unix.NFPROTO_INET || tableOf(m.Data[4:]) != TableName {
				continue
			}
			events[name]++
		}
	}
}

// tableOf returns the table an object notification is about: attribute 1
// is the table name for tables, chains, rules, sets and element lists.
func tableOf(b []byte) string {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return ""
	}
	for ad.Next() {
		if ad.Type() == 1 {
			return ad.String()
		}
	}
	return ""
}

// genInfo decodes a NEWGEN message: NFTA_GEN_PROC_PID (2, big endian) and
// NFTA_GEN_PROC_NAME (3).
func genInfo(b []byte) (uint32, string) {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return 0, ""
	}
	var pid uint32
	var comm string
	for ad.Next() {
		switch ad.Type() {
		case 2:
			if d := ad.Bytes(); len(d) == 4 {
				pid = uint32(d[0])<<24 | uint32(d[1])<<16 | uint32(d[2])<<8 | uint32(d[3])
			}
		case 3:
			comm = ad.String()
		}
	}
	return pid, comm
}

// ownThread reports whether pid is a thread of this process: the kernel
// names the committing thread, and a Go program commits from any of its
// threads.
func ownThread(pid uint32) bool {
	if pid == 0 {
		return false
	}
	if int(pid) == os.Getpid() {
		return true
	}
	_, err := os.Stat("/proc/self/task/" + strconv.FormatUint(uint64(pid), 10))
	return err == nil
}
