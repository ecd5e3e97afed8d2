//go:build linux

package netcut

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrDestroyUnsupported means the kernel cannot destroy sockets: it was built
// without CONFIG_INET_DIAG_DESTROY (SOCK_DESTROY answers EOPNOTSUPP).
var ErrDestroyUnsupported = errors.New("kernel cannot destroy sockets (SOCK_DESTROY unsupported: CONFIG_INET_DIAG_DESTROY)")

// Count is a number of sockets per address family.
type Count struct{ IPv4, IPv6 int }

// Total is IPv4 + IPv6.
func (c Count) Total() int { return c.IPv4 + c.IPv6 }

func (c *Count) add(family uint8) {
	if family == unix.AF_INET {
		c.IPv4++
	} else {
		c.IPv6++
	}
}

// CutResult is what a Cut did.
type CutResult struct {
	// TCP and UDP count the sockets destroyed.
	TCP, UDP Count
	// Gone counts sockets that closed between the dump and their destroy.
	Gone int
	// Skipped lists the TCP sockets in TIME_WAIT or CLOSE, left alone: they
	// carry no more data.
	Skipped []Socket
	// Failed lists the sockets that could not be destroyed.
	Failed []SocketError
}

// SocketError is the failure to destroy one socket.
type SocketError struct {
	Socket Socket
	Err    error
}

func (e SocketError) Error() string { return fmt.Sprintf("destroying %s: %v", e.Socket, e.Err) }
func (e SocketError) Unwrap() error { return e.Err }

// Cut destroys, inside namespace ns, every TCP socket that can still carry
// data (any state but LISTEN, TIME_WAIT and CLOSE) and every connected UDP
// socket, IPv4 and IPv6. It never touches a LISTEN socket or an unconnected
// UDP socket. The kernel sends the TCP peers a RST.
//
// Cut goes on past a socket it cannot destroy and returns every such failure,
// joined, with the result; a socket already gone is not a failure. It stops at
// once, with an error wrapping [ErrDestroyUnsupported], if the kernel cannot
// destroy sockets at all. Sockets opened after its dump are not seen: re-check
// with [List].
//
// Cut refuses, with [ErrOwnNamespace], the calling process's own namespace
// (the node's, for the agent).
func Cut(ctx context.Context, ns *NS) (CutResult, error) {
	var res CutResult
	if ns != nil {
		if err := ns.refuseSame("/proc/self/ns/net"); err != nil {
			return res, fmt.Errorf("cutting sockets: %w", err)
		}
	}
	c, err := dialDiag(ctx, ns)
	if err != nil {
		return res, err
	}
	defer c.close()
	for _, pf := range every {
		socks, err := c.dump(pf, allStates)
		if err != nil {
			return res, fmt.Errorf("cutting sockets in %s: %w", ns, err)
		}
		for _, s := range socks {
			if err := ctx.Err(); err != nil {
				return res, fmt.Errorf("cutting sockets in %s: %w", ns, err)
			}
			if err := res.cut(c, s); err != nil {
				return res, fmt.Errorf("cutting sockets in %s: %w", ns, err)
			}
		}
	}
	if len(res.Failed) > 0 {
		errs := make([]error, len(res.Failed))
		for i, f := range res.Failed {
			errs[i] = f
		}
		return res, fmt.Errorf("cutting sockets in %s: %d of them failed: %w", ns, len(res.Failed), errors.Join(errs...))
	}
	return res, nil
}

// cut destroys s if Cut should, and records what happened. Its error means
// no destroy can work.
func (res *CutResult) cut(c *diagConn, s Socket) error {
	if !s.Live() {
		if s.pf.proto == unix.IPPROTO_TCP && s.State != StateListen {
			res.Skipped = append(res.Skipped, s)
		}
		return nil
	}
	err := c.destroy(s)
	switch {
	case err == nil:
		if s.pf.proto == unix.IPPROTO_TCP {
			res.TCP.add(s.pf.family)
		} else {
			res.UDP.add(s.pf.family)
		}
	case errors.Is(err, unix.ENOENT):
		res.Gone++
	case errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("destroying %s: %w (%w)", s, ErrDestroyUnsupported, err)
	default:
		res.Failed = append(res.Failed, SocketError{Socket: s, Err: err})
	}
	return nil
}

// destroy sends SOCK_DESTROY for the socket s names, cookie included, and
// waits for the kernel's answer.
func (c *diagConn) destroy(s Socket) error {
	seq, err := c.send(unix.SOCK_DESTROY, unix.NLM_F_ACK, s.pf.family, s.pf.proto, allStates, s.id)
	if err != nil {
		return err
	}
	_, err = c.receive(seq, func([]byte) error { return nil })
	return err
}
