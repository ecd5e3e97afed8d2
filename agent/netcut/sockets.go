//go:build linux

package netcut

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"

	"golang.org/x/sys/unix"
)

// State is a socket's state as sock_diag reports it (the kernel's TCP_*
// values). A UDP socket is StateEstablished when connected, StateClose when not.
type State uint8

// The states sock_diag reports (include/net/tcp_states.h).
const (
	StateEstablished State = 1 + iota
	StateSynSent
	StateSynRecv
	StateFinWait1
	StateFinWait2
	StateTimeWait
	StateClose
	StateCloseWait
	StateLastAck
	StateListen
	StateClosing
)

var stateNames = [...]string{"", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
	"TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING"}

func (s State) String() string {
	if int(s) < len(stateNames) && s != 0 {
		return stateNames[s]
	}
	return "STATE(" + strconv.Itoa(int(s)) + ")"
}

// allStates asks a dump for sockets in every state.
const allStates = ^uint32(0)

// Socket is one TCP or UDP socket of a namespace.
type Socket struct {
	// Proto is "tcp" or "udp".
	Proto string
	// Family is the socket's own family, "ipv4" or "ipv6". An IPv6 socket
	// talking to an IPv4 peer shows IPv4 addresses (unmapped) but family
	// "ipv6".
	Family        string
	State         State
	Local, Remote netip.AddrPort
	// Inode is the socket's inode: /proc/PID/fd links read socket:[Inode].
	Inode uint32
	UID   uint32
	pf    protoFamily
	id    sockID
}

func (s Socket) String() string {
	return fmt.Sprintf("%s/%s %s %s->%s inode %d", s.Proto, s.Family, s.State, s.Local, s.Remote, s.Inode)
}

// Live reports whether s can still carry data, and so whether Cut destroys
// it: a TCP socket in any state but LISTEN, TIME_WAIT and CLOSE, a UDP socket
// when connected.
func (s Socket) Live() bool {
	if s.Proto == "udp" {
		return s.State == StateEstablished
	}
	return s.State != StateListen && s.State != StateTimeWait && s.State != StateClose
}

type protoFamily struct {
	proto, family uint8
}

// every is the order List and Cut walk the tables in.
var every = []protoFamily{
	{unix.IPPROTO_TCP, unix.AF_INET}, {unix.IPPROTO_TCP, unix.AF_INET6},
	{unix.IPPROTO_UDP, unix.AF_INET}, {unix.IPPROTO_UDP, unix.AF_INET6},
}

// List returns the TCP and UDP sockets, IPv4 and IPv6, of namespace ns, in
// every state.
func List(ctx context.Context, ns *NS) ([]Socket, error) {
	c, err := dialDiag(ctx, ns)
	if err != nil {
		return nil, err
	}
	defer c.close()
	var all []Socket
	for _, pf := range every {
		socks, err := c.dump(pf, allStates)
		if err != nil {
			return nil, fmt.Errorf("listing sockets in %s: %w", ns, err)
		}
		all = append(all, socks...)
	}
	return all, nil
}

// dump lists one table, restarting when the kernel marks the dump
// inconsistent.
func (c *diagConn) dump(pf protoFamily, states uint32) ([]Socket, error) {
	for range dumpRetries {
		seq, err := c.send(unix.SOCK_DIAG_BY_FAMILY, unix.NLM_F_DUMP, pf.family, pf.proto, states, sockID{})
		if err != nil {
			return nil, fmt.Errorf("asking for %s sockets: %w", pf, err)
		}
		var socks []Socket
		intr, err := c.receive(seq, func(b []byte) error {
			s, err := parseDiagMsg(pf.proto, b)
			socks = append(socks, s)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("dumping %s sockets: %w", pf, err)
		}
		if !intr {
			return socks, nil
		}
	}
	return nil, fmt.Errorf("dumping %s sockets: still inconsistent after %d tries", pf, dumpRetries)
}

func (pf protoFamily) String() string {
	return protoName(pf.proto) + "/" + familyName(pf.family)
}

func protoName(p uint8) string {
	if p == unix.IPPROTO_TCP {
		return "tcp"
	}
	return "udp"
}

func familyName(f uint8) string {
	if f == unix.AF_INET {
		return "ipv4"
	}
	return "ipv6"
}

func parseDiagMsg(proto uint8, b []byte) (Socket, error) {
	if len(b) < sizeofDiagMsg {
		return Socket{}, fmt.Errorf("inet_diag_msg of %d bytes, want %d", len(b), sizeofDiagMsg)
	}
	s := Socket{Proto: protoName(proto), Family: familyName(b[0]), State: State(b[1]), pf: protoFamily{proto, b[0]}}
	copy(s.id[:], b[4:4+sizeofSockID])
	s.Local = netip.AddrPortFrom(idAddr(b[0], s.id[4:20]), binary.BigEndian.Uint16(s.id[0:2]))
	s.Remote = netip.AddrPortFrom(idAddr(b[0], s.id[20:36]), binary.BigEndian.Uint16(s.id[2:4]))
	rest := b[4+sizeofSockID:]
	s.UID = binary.NativeEndian.Uint32(rest[12:])
	s.Inode = binary.NativeEndian.Uint32(rest[16:])
	return s, nil
}

func idAddr(family uint8, raw []byte) netip.Addr {
	if family == unix.AF_INET {
		return netip.AddrFrom4([4]byte(raw[:4]))
	}
	return netip.AddrFrom16([16]byte(raw[:16])).Unmap()
}
