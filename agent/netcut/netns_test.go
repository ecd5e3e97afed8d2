//go:build linux

package netcut

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// needRoot skips a test that needs root, or fails it when CI=true: CI must
// run them.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("netcut tests need root (CAP_SYS_ADMIN, CAP_NET_ADMIN); CI=true must provide it")
	}
	t.Skip("netcut tests need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)")
}

// newNS creates a throwaway network namespace with lo up. It lives while the
// handle is open and leaves nothing behind on the host.
func newNS(t *testing.T) *NS {
	t.Helper()
	needRoot(t)
	type result struct {
		ns  *NS
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// This thread never returns to the host namespace: it stays
		// locked and Go discards it when the goroutine ends.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		ns, err := OpenNS("/proc/thread-self/ns/net")
		ch <- result{ns, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("creating a network namespace: %v", r.err)
	}
	t.Cleanup(func() { r.ns.Close() })
	do(t, r.ns, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	return r.ns
}

// do runs fn inside ns and fails the test on error.
func do(t *testing.T, ns *NS, fn func() error) {
	t.Helper()
	if err := ns.Do(fn); err != nil {
		t.Fatalf("in %s: %v", ns, err)
	}
}

// link joins a and b with a veth pair, "va" in a and "vb" in b, with the
// given addresses (CIDR notation), up, without duplicate address detection,
// and with permanent neighbour entries so that no first packet waits for ARP
// or neighbour discovery.
func link(t *testing.T, a, b *NS, addrsA, addrsB []string) {
	t.Helper()
	do(t, a, func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "va"}, PeerName: "vb", PeerNamespace: netlink.NsFd(b.fd)}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		return setUp("va", addrsA)
	})
	do(t, b, func() error { return setUp("vb", addrsB) })
	macA, macB := mac(t, a, "va"), mac(t, b, "vb")
	do(t, a, func() error { return neighbours("va", addrsB, macB) })
	do(t, b, func() error { return neighbours("vb", addrsA, macA) })
}

func mac(t *testing.T, ns *NS, name string) net.HardwareAddr {
	t.Helper()
	var hw net.HardwareAddr
	do(t, ns, func() error {
		l, err := netlink.LinkByName(name)
		if err == nil {
			hw = l.Attrs().HardwareAddr
		}
		return err
	})
	return hw
}

func neighbours(name string, addrs []string, hw net.HardwareAddr) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		ipnet, err := netlink.ParseIPNet(a)
		if err != nil {
			return err
		}
		n := &netlink.Neigh{LinkIndex: l.Attrs().Index, State: netlink.NUD_PERMANENT, IP: ipnet.IP, HardwareAddr: hw}
		if err := netlink.NeighAdd(n); err != nil {
			return err
		}
	}
	return nil
}

func setUp(name string, addrs []string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		ipnet, err := netlink.ParseIPNet(a)
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipnet, Flags: unix.IFA_F_NODAD}); err != nil {
			return err
		}
	}
	return netlink.LinkSetUp(l)
}

// run runs a command inside ns (fork happens on the namespace's thread).
func run(t *testing.T, ns *NS, args ...string) {
	t.Helper()
	do(t, ns, func() error {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return errors.New(strings.Join(args, " ") + ": " + err.Error() + ": " + string(out))
		}
		return nil
	})
}

// listen opens a TCP listener inside ns (nil: the test's own namespace).
func listen(t *testing.T, ns *NS, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	open := func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	}
	if ns == nil {
		if err := open(); err != nil {
			t.Fatal(err)
		}
	} else {
		do(t, ns, open)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// dial connects from ns to raddr, from laddr if not empty.
func dial(t *testing.T, ns *NS, network, laddr, raddr string) net.Conn {
	t.Helper()
	var c net.Conn
	do(t, ns, func() error {
		d := net.Dialer{Timeout: 5 * time.Second}
		var err error
		if laddr != "" {
			ap := netip.MustParseAddrPort(laddr)
			if network == "tcp" {
				d.LocalAddr = net.TCPAddrFromAddrPort(ap)
			} else {
				d.LocalAddr = net.UDPAddrFromAddrPort(ap)
			}
		}
		c, err = d.Dial(network, raddr)
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// accept takes the next connection of l.
func accept(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	l.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("accepting on %s: %v", l.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends msg from one end to the other and checks it arrived.
func exchange(from, to net.Conn, msg string) error {
	deadline := time.Now().Add(5 * time.Second)
	from.SetDeadline(deadline)
	to.SetDeadline(deadline)
	if _, err := from.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(to, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("got " + string(buf) + ", want " + msg)
	}
	return nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
