package nftables

import (
	"fmt"

	nft "github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

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
