// Package netns builds throwaway test hosts out of Linux network namespaces:
// it creates and deletes namespaces, connects them with veth pairs, gives
// interfaces IPv4 and IPv6 addresses, and runs functions, listeners and
// dialers inside a namespace.
//
// It is test-host plumbing, not product code: namespace and link set-up
// execs `ip` from iproute2. Nothing here touches the calling process's own
// (root) namespace except to create and delete the namespaces it named, and
// every namespace carries a random suffix so parallel runs do not collide.
// Everything needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN).
package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Available reports why namespaces cannot be used here, or nil if they can:
// it needs root and the `ip` binary, and probes by creating and deleting one
// namespace.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("not root: network namespaces need CAP_SYS_ADMIN")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("iproute2 `ip` not found: %w", err)
	}
	n, err := New("dbprobe")
	if err != nil {
		return err
	}
	return n.Close()
}

// NS is one named network namespace (as `ip netns` sees it).
type NS struct {
	name string
	once sync.Once
	err  error
}

// New creates a namespace named prefix-<random>, with its loopback up.
func New(prefix string) (*NS, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	name := prefix + "-" + hex.EncodeToString(b[:])
	if len(name) > 64 {
		return nil, fmt.Errorf("netns name %q too long", name)
	}
	if err := run("ip", "netns", "add", name); err != nil {
		return nil, err
	}
	n := &NS{name: name}
	if err := n.IP("link", "set", "lo", "up"); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Name is the namespace's name under /run/netns.
func (n *NS) Name() string { return n.name }

// Path is the namespace's bind mount, usable with setns(2).
func (n *NS) Path() string { return filepath.Join("/run/netns", n.name) }

// Close deletes the namespace; its interfaces (and the veth peers of them)
// go with it. Safe to call more than once.
func (n *NS) Close() error {
	n.once.Do(func() { n.err = run("ip", "netns", "del", n.name) })
	return n.err
}

// Open returns a file referring to the namespace (for example for
// nftables.WithNetNSFd). The caller closes it.
func (n *NS) Open() (*os.File, error) { return os.Open(n.Path()) }

// IP runs `ip -n <ns> args...`.
func (n *NS) IP(args ...string) error {
	return run("ip", append([]string{"-n", n.name}, args...)...)
}

// Exec runs a command inside the namespace (`ip netns exec`) and returns its
// combined output.
func (n *NS) Exec(name string, args ...string) ([]byte, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.name, name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ip netns exec %s %s %s: %w: %s", n.name, name, strings.Join(args, " "), err, bytes1k(out))
	}
	return out, nil
}

// AddAddr adds an address with its prefix length to dev. IPv6 addresses skip
// duplicate address detection, so they are usable at once.
func (n *NS) AddAddr(dev string, p netip.Prefix) error {
	args := []string{"addr", "add", p.String(), "dev", dev}
	if p.Addr().Is6() {
		args = append(args, "nodad")
	}
	return n.IP(args...)
}

// Veth creates a veth pair, aDev in a and bDev in b, both up.
func Veth(a *NS, aDev string, b *NS, bDev string) error {
	if err := a.IP("link", "add", aDev, "type", "veth", "peer", "name", bDev, "netns", b.name); err != nil {
		return err
	}
	if err := a.IP("link", "set", aDev, "up"); err != nil {
		return err
	}
	return b.IP("link", "set", bDev, "up")
}

// Do runs fn on an OS thread switched into the namespace. Sockets fn creates
// belong to the namespace for their whole life. Goroutines fn starts do not
// inherit the namespace. If switching back fails the thread is discarded,
// never reused by another goroutine.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := n.Open()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", n.name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it exits with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("setns back from %s: %w", n.name, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Listen opens a listener inside the namespace ("tcp", "[::]:22" listens on
// IPv4 and IPv6).
func (n *NS) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// Dial connects from inside the namespace, giving up after timeout.
func (n *NS) Dial(ctx context.Context, network, addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		d := net.Dialer{Timeout: timeout}
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Echo serves l until it is closed: each connection gets back every byte it
// sends. It returns at once; the serving goroutines end when l closes and
// their peers hang up.
func Echo(l net.Listener) {
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					k, err := c.Read(buf)
					if k > 0 {
						if _, werr := c.Write(buf[:k]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
}

// RoundTrip writes msg to c and reads it back (from an Echo server), with a
// deadline.
func RoundTrip(c net.Conn, msg string, timeout time.Duration) error {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	got := 0
	for got < len(buf) {
		k, err := c.Read(buf[got:])
		got += k
		if err != nil {
			return err
		}
	}
	if string(buf) != msg {
		return fmt.Errorf("echo returned %q, want %q", buf, msg)
	}
	return nil
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes1k(out))
	}
	return nil
}

func bytes1k(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 1024 {
		s = s[:1024] + "..."
	}
	return s
}
