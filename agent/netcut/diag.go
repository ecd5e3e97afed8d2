//go:build linux

package netcut

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Layout of the sock_diag structures (linux/inet_diag.h):
//
//	struct inet_diag_sockid { __be16 sport, dport; __be32 src[4], dst[4]; __u32 if; __u32 cookie[2]; }  48 bytes
//	struct inet_diag_req_v2 { __u8 family, protocol, ext, pad; __u32 states; struct inet_diag_sockid id; }  56 bytes
//	struct inet_diag_msg { __u8 family, state, timer, retrans; struct inet_diag_sockid id;
//	                       __u32 expires, rqueue, wqueue, uid, inode; }  72 bytes
const (
	sizeofSockID  = 48
	sizeofReqV2   = 8 + sizeofSockID
	sizeofDiagMsg = 4 + sizeofSockID + 20
	// dumpRetries bounds the restarts of a dump the kernel marked
	// inconsistent (NLM_F_DUMP_INTR) because the table changed under it.
	dumpRetries = 5
	// defaultIOTimeout bounds each netlink receive when ctx has no deadline.
	defaultIOTimeout = 10 * time.Second
)

// sockID is an inet_diag_sockid exactly as the kernel reported it, cookie
// included, so a destroy names the very socket the dump saw.
type sockID [sizeofSockID]byte

// diagConn is a NETLINK_SOCK_DIAG socket created inside one namespace.
type diagConn struct {
	fd  int
	seq uint32
	// buf holds one read: a dump part is at most 32 KiB, and a longer
	// message is reported as truncated, never cut short silently.
	buf []byte
}

// dialDiag opens a sock_diag socket inside ns. Receives time out at ctx's
// deadline, or after defaultIOTimeout.
func dialDiag(ctx context.Context, ns *NS) (*diagConn, error) {
	if ns == nil {
		return nil, errors.New("opening sock_diag: no network namespace given (refusing to act on the caller's own)")
	}
	var fd int
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("opening sock_diag in %s: %w", ns, err)
	}
	timeout := defaultIOTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("setting sock_diag receive timeout: %w", err)
	}
	return &diagConn{fd: fd, buf: make([]byte, 64<<10)}, nil
}

func (c *diagConn) close() { unix.Close(c.fd) }

// send sends one request (message type typ) carrying an inet_diag_req_v2.
func (c *diagConn) send(typ, flags uint16, family, proto uint8, states uint32, id sockID) (uint32, error) {
	c.seq++
	b := make([]byte, unix.SizeofNlMsghdr+sizeofReqV2)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint16(b[6:], unix.NLM_F_REQUEST|flags)
	binary.NativeEndian.PutUint32(b[8:], c.seq)
	r := b[unix.SizeofNlMsghdr:]
	r[0], r[1] = family, proto
	binary.NativeEndian.PutUint32(r[4:], states)
	copy(r[8:], id[:])
	return c.seq, unix.Sendto(c.fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

// receive reads the answers to request seq, handing each payload of a
// message of another type than DONE/ERROR to fn, until DONE or an ERROR (an
// ack is an ERROR with code 0). It reports whether the kernel marked the dump
// inconsistent.
func (c *diagConn) receive(seq uint32, fn func([]byte) error) (interrupted bool, err error) {
	for {
		n, _, rflags, _, err := unix.Recvmsg(c.fd, c.buf, nil, 0)
		if err != nil {
			return interrupted, fmt.Errorf("reading sock_diag answer: %w", err)
		}
		if rflags&unix.MSG_TRUNC != 0 {
			return interrupted, errors.New("reading sock_diag answer: message truncated")
		}
		msgs, err := syscall.ParseNetlinkMessage(c.buf[:n])
		if err != nil {
			return interrupted, fmt.Errorf("parsing sock_diag answer: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue // a late answer to an earlier request
			}
			interrupted = interrupted || m.Header.Flags&unix.NLM_F_DUMP_INTR != 0
			switch m.Header.Type {
			case unix.NLMSG_DONE, unix.NLMSG_ERROR:
				return interrupted, netlinkErrno(m.Data)
			}
			if err := fn(m.Data); err != nil {
				return interrupted, err
			}
		}
	}
}

// netlinkErrno turns the int32 that opens NLMSG_ERROR and NLMSG_DONE
// payloads into an error: 0 is success, otherwise minus an errno.
func netlinkErrno(data []byte) error {
	if len(data) < 4 {
		return nil
	}
	if code := int32(binary.NativeEndian.Uint32(data)); code < 0 {
		return unix.Errno(-code)
	}
	return nil
}
