//go:build linux

package volatile

import (
	"context"
	"fmt"

	"kir.dev/kir/agent/netcut"
)

// Socket is one TCP or UDP socket of the pod's network namespace and the
// processes holding it. PIDs is empty for a socket no listed process holds
// (a TIME_WAIT socket, one whose owner exited, one held by a process of
// another pod sharing the namespace — none, normally — or one the agent
// could not read the descriptors of).
type Socket struct {
	netcut.Socket
	PIDs []int `json:"pids"`
}

// Listening reports whether s is a listening port: a TCP socket in state
// LISTEN, or an unconnected UDP socket bound to a port.
func (s Socket) Listening() bool {
	if s.Proto == "udp" {
		return s.State == netcut.StateClose && s.Local.Port() != 0
	}
	return s.State == netcut.StateListen
}

// Sockets lists the TCP and UDP sockets of network namespace ns (the
// pod's, held open by the caller) with agent/netcut, and joins them to
// procs by inode.
func Sockets(ctx context.Context, ns *netcut.NS, procs []Process) ([]Socket, error) {
	socks, err := netcut.List(ctx, ns)
	if err != nil {
		return nil, fmt.Errorf("listing the pod's sockets: %w", err)
	}
	return JoinSockets(socks, procs), nil
}

// JoinSockets gives each socket the PIDs, in procs' order, of the
// processes with a descriptor on it (/proc/PID/fd/N → socket:[INODE]).
func JoinSockets(socks []netcut.Socket, procs []Process) []Socket {
	owners := map[uint32][]int{}
	for _, p := range procs {
		seen := map[uint32]bool{}
		for _, fd := range p.FDs {
			if ino, ok := fd.SocketInode(); ok && !seen[ino] {
				seen[ino] = true
				owners[ino] = append(owners[ino], p.PID)
			}
		}
	}
	out := make([]Socket, len(socks))
	for i, s := range socks {
		out[i] = Socket{Socket: s, PIDs: owners[s.Inode]}
		if s.Inode == 0 {
			out[i].PIDs = nil // TIME_WAIT and the like have no inode
		}
	}
	return out
}
