package agent

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"kir.dev/kir/agent/netcut"
	"kir.dev/kir/agent/volatile"
)

// hostNetwork is the agent's network on Linux: package netcut, its
// sockets opened inside the pod's namespace, conntrack in the host's.
type hostNetwork struct{}

// open holds the namespace for the whole job: a handle pins it, where a
// path (/proc/PID/ns/net) would follow whatever process gets that PID
// next.
func (hostNetwork) open(nsPath string) (podNS, error) { return netcut.OpenNS(nsPath) }

func (hostNetwork) probe(ctx context.Context, ns podNS, target netip.AddrPort, timeout time.Duration) (string, string) {
	var in *netcut.NS
	if ns != nil {
		in = ns.(*netcut.NS)
	}
	r := netcut.Probe(ctx, in, target, timeout)
	return string(r.Outcome), r.Err
}

func (hostNetwork) cut(ctx context.Context, ns podNS) (tcp, udp int, errs []string, err error) {
	res, err := netcut.Cut(ctx, ns.(*netcut.NS))
	for _, f := range res.Failed {
		errs = append(errs, f.Error())
	}
	// Per-socket failures are listed; only a Cut that could not run at
	// all is an error.
	if len(res.Failed) > 0 && !errors.Is(err, netcut.ErrDestroyUnsupported) {
		err = nil
	}
	return res.TCP.Total(), res.UDP.Total(), errs, err
}

func (hostNetwork) sessions(ctx context.Context, ns podNS) (int, error) {
	socks, err := netcut.List(ctx, ns.(*netcut.NS))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range socks {
		// Established only: a connect still pending (SYN_SENT) is the
		// attacker trying again through a policy that drops it.
		if s.State == netcut.StateEstablished {
			n++
		}
	}
	return n, nil
}

func (hostNetwork) deleteFlows(ctx context.Context, ips []netip.Addr) (int, error) {
	ct, err := netcut.OpenConntrack(nil)
	if err != nil {
		return 0, err
	}
	defer ct.Close()
	return ct.DeleteFlows(ctx, ips)
}

func (hostNetwork) countFlows(ctx context.Context, ips []netip.Addr) (int, error) {
	ct, err := netcut.OpenConntrack(nil)
	if err != nil {
		return 0, err
	}
	defer ct.Close()
	return ct.CountFlows(ctx, ips)
}

func (hostNetwork) sockets(ctx context.Context, ns podNS, procs []volatile.Process) ([]volatile.Socket, error) {
	return volatile.Sockets(ctx, ns.(*netcut.NS), procs)
}
