//go:build linux

package netcut

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Conntrack reads and deletes the conntrack entries of one network namespace.
// It is not safe for concurrent use.
type Conntrack struct {
	h    *netlink.Handle
	name string
}

// OpenConntrack opens the conntrack table of ns; a nil ns means the caller's
// own namespace (the host's, for the agent).
func OpenConntrack(ns *NS) (*Conntrack, error) {
	var h *netlink.Handle
	open := func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_NETFILTER)
		return err
	}
	name := "the host namespace"
	var err error
	if ns == nil {
		err = open()
	} else {
		name = ns.String()
		err = ns.Do(open)
	}
	if err != nil {
		return nil, fmt.Errorf("opening conntrack in %s: %w", name, err)
	}
	return &Conntrack{h: h, name: name}, nil
}

// Close releases the netlink socket.
func (c *Conntrack) Close() { c.h.Close() }

// DeleteFlows deletes, IPv4 and IPv6, every conntrack entry whose original
// source, original destination, reply source or reply destination is one of
// ips, and returns how many it deleted. A Service flow DNATed to a pod names
// the pod only as its reply source, so the reply tuple matters.
func (c *Conntrack) DeleteFlows(ctx context.Context, ips []netip.Addr) (int, error) {
	f, err := newFlowFilter(ips)
	if err != nil {
		return 0, fmt.Errorf("deleting conntrack entries in %s: %w", c.name, err)
	}
	total := 0
	for _, fam := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		for try := 0; ; try++ {
			if err := c.deadline(ctx); err != nil {
				return total, fmt.Errorf("deleting conntrack entries in %s: %w", c.name, err)
			}
			n, err := c.h.ConntrackDeleteFilters(netlink.ConntrackTable, fam, f)
			total += int(n)
			if errors.Is(err, netlink.ErrDumpInterrupted) && try < dumpRetries {
				continue // the table changed during the dump: go over it again
			}
			if err != nil {
				return total, fmt.Errorf("deleting conntrack entries in %s: %w", c.name, err)
			}
			break
		}
	}
	return total, nil
}

// CountFlows counts the entries DeleteFlows would delete.
func (c *Conntrack) CountFlows(ctx context.Context, ips []netip.Addr) (int, error) {
	f, err := newFlowFilter(ips)
	if err != nil {
		return 0, fmt.Errorf("counting conntrack entries in %s: %w", c.name, err)
	}
	total := 0
	for _, fam := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		flows, err := c.list(ctx, fam)
		if err != nil {
			return 0, fmt.Errorf("counting conntrack entries in %s: %w", c.name, err)
		}
		for _, fl := range flows {
			if f.MatchConntrackFlow(fl) {
				total++
			}
		}
	}
	return total, nil
}

func (c *Conntrack) list(ctx context.Context, fam netlink.InetFamily) ([]*netlink.ConntrackFlow, error) {
	for try := 0; ; try++ {
		if err := c.deadline(ctx); err != nil {
			return nil, err
		}
		flows, err := c.h.ConntrackTableList(netlink.ConntrackTable, fam)
		if errors.Is(err, netlink.ErrDumpInterrupted) && try < dumpRetries {
			continue
		}
		return flows, err
	}
}

// deadline fails if ctx has ended and otherwise bounds each netlink
// exchange by ctx's deadline, or defaultIOTimeout.
func (c *Conntrack) deadline(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	timeout := defaultIOTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	return c.h.SetSocketTimeout(timeout)
}

// flowFilter matches a flow naming one of its addresses in either tuple.
type flowFilter map[netip.Addr]bool

func newFlowFilter(ips []netip.Addr) (flowFilter, error) {
	if len(ips) == 0 {
		return nil, errors.New("no IP addresses given")
	}
	f := flowFilter{}
	for _, ip := range ips {
		if !ip.IsValid() {
			return nil, errors.New("invalid (zero) IP address given")
		}
		f[ip.Unmap().WithZone("")] = true
	}
	return f, nil
}

// MatchConntrackFlow implements netlink.CustomConntrackFilter.
func (f flowFilter) MatchConntrackFlow(fl *netlink.ConntrackFlow) bool {
	for _, ip := range []net.IP{fl.Forward.SrcIP, fl.Forward.DstIP, fl.Reverse.SrcIP, fl.Reverse.DstIP} {
		if a, ok := netip.AddrFromSlice(ip); ok && f[a.Unmap()] {
			return true
		}
	}
	return false
}
