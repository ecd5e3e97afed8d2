//go:build linux

package netcut

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

// Outcome is how a probe's TCP connect ended.
type Outcome string

const (
	// Connected: the handshake completed.
	Connected Outcome = "connected"
	// Refused: the peer or a filter answered with a RST or an ICMP
	// port-unreachable (ECONNREFUSED), or a local filter rejected the
	// connect (EPERM, EACCES).
	Refused Outcome = "refused"
	// TimedOut: no answer before the timeout; typically a DROP rule.
	TimedOut Outcome = "timed-out"
	// Unreachable: no route, or an ICMP host/network unreachable or
	// administratively prohibited (EHOSTUNREACH, ENETUNREACH).
	Unreachable Outcome = "unreachable"
	// Failed: the probe itself could not run (namespace gone, context
	// cancelled, ...); it says nothing about the policy.
	Failed Outcome = "failed"
)

// ProbeResult is what one probe saw.
type ProbeResult struct {
	Addr    netip.AddrPort
	Outcome Outcome
	// Err is the connect error's text; empty when Connected.
	Err     string
	Elapsed time.Duration
}

// Probe opens a TCP connection to addr from inside ns and closes it at once.
// With a nil ns it probes from the caller's namespace (the host's, for the
// agent): the control probe. It waits at most timeout, less if ctx ends first.
//
// An enforced policy shows as Refused, Unreachable or TimedOut depending on
// how the enforcer rejects (REJECT with a RST or an ICMP type, or DROP); only
// a Connected control probe to the same address makes that failure mean the
// policy rather than a dead peer. Probe never fails: a probe that could not
// run is a Failed result.
func Probe(ctx context.Context, ns *NS, addr netip.AddrPort, timeout time.Duration) ProbeResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var dialErr error
	dial := func() error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr.String())
		if err == nil {
			conn.Close()
		}
		dialErr = err
		return nil
	}
	var nsErr error
	if ns == nil {
		dial()
	} else {
		nsErr = ns.Do(dial)
	}
	r := ProbeResult{Addr: addr, Elapsed: time.Since(start)}
	switch {
	case nsErr != nil:
		r.Outcome, r.Err = Failed, nsErr.Error()
	case dialErr != nil:
		r.Outcome, r.Err = classify(ctx, dialErr), dialErr.Error()
	default:
		r.Outcome = Connected
	}
	return r
}

func classify(ctx context.Context, err error) Outcome {
	switch {
	case err == nil:
		return Connected
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return Refused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return Unreachable
	case errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, os.ErrDeadlineExceeded),
		errors.Is(err, context.DeadlineExceeded) && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return TimedOut
	default:
		return Failed
	}
}
