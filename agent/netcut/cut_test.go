//go:build linux

package netcut

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

type family struct {
	name       string
	a, b, mask string // addresses of the A and B ends, prefix length
}

var families = []family{
	{"ipv4", "10.77.0.1", "10.77.0.2", "/24"},
	{"ipv6", "fd00:77::1", "fd00:77::2", "/64"},
}

func hostPort(ip string, port string) string { return net.JoinHostPort(ip, port) }

// pair is two namespaces, A (the pod) and B (its peer), with a TCP session
// each way, a connected and an unconnected UDP socket in A, a socket of A in
// TIME_WAIT and a connect of A pending, all on fixed ports so that two pairs
// hold the very same 4-tuples.
type pair struct {
	a, b                 *NS
	aListener            net.Listener
	outA, outB, inA, inB net.Conn // A→B session (A's end, B's end), B→A session
	udpConn, udpUnconn   net.Conn // in A
	udpPeer              net.PacketConn
	// pending is the result of a connect from A that B's DROP rule holds
	// in SYN_SENT.
	pending <-chan error
}

func newPair(t *testing.T, f family) *pair {
	p := &pair{a: newNS(t), b: newNS(t)}
	link(t, p.a, p.b, []string{f.a + f.mask}, []string{f.b + f.mask})
	bl := listen(t, p.b, hostPort(f.b, "7000"))
	p.aListener = listen(t, p.a, hostPort(f.a, "7001"))
	p.outA = dial(t, p.a, "tcp", hostPort(f.a, "40001"), hostPort(f.b, "7000"))
	p.outB = accept(t, bl)
	p.inB = dial(t, p.b, "tcp", hostPort(f.b, "40002"), hostPort(f.a, "7001"))
	p.inA = accept(t, p.aListener)
	do(t, p.b, func() error {
		var err error
		p.udpPeer, err = net.ListenPacket("udp", hostPort(f.b, "9000"))
		return err
	})
	t.Cleanup(func() { p.udpPeer.Close() })
	p.udpConn = dial(t, p.a, "udp", hostPort(f.a, "40003"), hostPort(f.b, "9000"))
	do(t, p.a, func() error {
		var err error
		p.udpUnconn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(hostPort(f.a, "9001"))))
		return err
	})
	t.Cleanup(func() { p.udpUnconn.Close() })
	for _, s := range [][2]net.Conn{{p.outA, p.outB}, {p.outB, p.outA}, {p.inA, p.inB}, {p.inB, p.inA}} {
		if err := exchange(s[0], s[1], "before"); err != nil {
			t.Fatalf("session %s-%s before the cut: %v", s[0].LocalAddr(), s[0].RemoteAddr(), err)
		}
	}
	p.timeWait(t, f, bl)
	p.synSent(t, f)
	return p
}

// timeWait leaves a socket of A in TIME_WAIT: A closes first.
func (p *pair) timeWait(t *testing.T, f family, bl net.Listener) {
	a := dial(t, p.a, "tcp", hostPort(f.a, "40004"), hostPort(f.b, "7000"))
	b := accept(t, bl)
	a.Close()
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(b); err != nil {
		t.Fatalf("waiting for A's FIN: %v", err)
	}
	b.Close()
	waitFor(t, p.a, func(s Socket) bool { return s.State == StateTimeWait && s.Local.Port() == 40004 })
}

// synSent leaves a connect of A pending: B drops its SYNs.
func (p *pair) synSent(t *testing.T, f family) {
	ipt := "iptables"
	if f.name == "ipv6" {
		ipt = "ip6tables"
	}
	run(t, p.b, ipt, "-A", "INPUT", "-p", "tcp", "--dport", "7002", "-j", "DROP")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	pending := make(chan error, 1)
	p.pending = pending
	go func() {
		pending <- p.a.Do(func() error {
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", hostPort(f.b, "7002"))
			if err == nil {
				c.Close()
			}
			return err
		})
	}()
	waitFor(t, p.a, func(s Socket) bool { return s.State == StateSynSent && s.Remote.Port() == 7002 })
}

// waitFor polls List until a socket of ns matches.
func waitFor(t *testing.T, ns *NS, match func(Socket) bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		socks, err := List(ctxT(t), ns)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range socks {
			if match(s) {
				return
			}
		}
	}
	t.Fatalf("no such socket in %s within 5s", ns)
}

func TestCut(t *testing.T) {
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			p, twin := newPair(t, f), newPair(t, f)
			res, err := Cut(ctxT(t), p.a)
			if err != nil {
				t.Fatalf("Cut: %v", err)
			}
			// Two established sessions and one pending connect.
			want := Count{IPv4: 3}
			wantUDP := Count{IPv4: 1}
			if f.name == "ipv6" {
				want, wantUDP = Count{IPv6: 3}, Count{IPv6: 1}
			}
			if res.TCP != want || res.UDP != wantUDP || len(res.Failed) != 0 {
				t.Errorf("Cut = TCP %+v UDP %+v failed %v; want TCP %+v UDP %+v", res.TCP, res.UDP, res.Failed, want, wantUDP)
			}
			if len(res.Skipped) != 1 || res.Skipped[0].State != StateTimeWait || res.Skipped[0].Local.Port() != 40004 {
				t.Errorf("Cut skipped %v; want the TIME_WAIT socket from port 40004", res.Skipped)
			}
			select {
			case err := <-p.pending:
				if !errors.Is(err, syscall.ECONNABORTED) {
					t.Errorf("pending connect after the cut: %v; want ECONNABORTED", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("pending connect still pending 5s after the cut")
			}
			checkListAfterCut(t, p.a, f)
			checkPeersReset(t, p)
			checkUDPAfterCut(t, p, f)
			checkListenerAccepts(t, p, f)
			checkTwinAlive(t, twin)
		})
	}
}

// checkListAfterCut: no socket of A carries data any more; the LISTEN socket
// and the unconnected UDP socket are still there.
func checkListAfterCut(t *testing.T, a *NS, f family) {
	t.Helper()
	socks, err := List(ctxT(t), a)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var listen, unconn bool
	for _, s := range socks {
		switch {
		case s.Proto == "tcp" && s.State == StateListen && s.Local.Port() == 7001:
			listen = true
		case s.Proto == "udp" && s.State == StateClose && s.Local.Port() == 9001:
			unconn = true
		case s.State == StateEstablished || s.State == StateSynSent || s.State == StateCloseWait:
			t.Errorf("socket survived the cut: %s", s)
		}
	}
	if !listen || !unconn {
		t.Errorf("after the cut: LISTEN 7001 listed %v, unconnected UDP 9001 listed %v; want both\n%v", listen, unconn, socks)
	}
}

// checkPeersReset: both B ends get a RST; both A ends see their socket aborted.
func checkPeersReset(t *testing.T, p *pair) {
	t.Helper()
	for _, c := range []net.Conn{p.outB, p.inB} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 16)); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("peer %s->%s read after the cut: %v; want ECONNRESET", c.LocalAddr(), c.RemoteAddr(), err)
		}
	}
	for _, c := range []net.Conn{p.outA, p.inA} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 16)); !errors.Is(err, syscall.ECONNABORTED) {
			t.Errorf("cut socket %s->%s read: %v; want ECONNABORTED", c.LocalAddr(), c.RemoteAddr(), err)
		}
	}
}

// checkUDPAfterCut: the connected socket was disconnected, the unconnected
// one still receives.
func checkUDPAfterCut(t *testing.T, p *pair, f family) {
	t.Helper()
	p.udpConn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := p.udpConn.Read(make([]byte, 16)); !errors.Is(err, syscall.ECONNABORTED) {
		t.Errorf("connected UDP socket read after the cut: %v; want ECONNABORTED", err)
	}
	dst := net.UDPAddrFromAddrPort(netip.MustParseAddrPort(hostPort(f.a, "9001")))
	if _, err := p.udpPeer.WriteTo([]byte("still"), dst); err != nil {
		t.Fatalf("sending to the unconnected UDP socket: %v", err)
	}
	p.udpUnconn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	if n, err := p.udpUnconn.Read(buf); err != nil || string(buf[:n]) != "still" {
		t.Errorf("unconnected UDP socket after the cut: read %q, %v; want \"still\"", buf[:n], err)
	}
}

// checkListenerAccepts: A's LISTEN socket takes a new connection.
func checkListenerAccepts(t *testing.T, p *pair, f family) {
	t.Helper()
	c := dial(t, p.b, "tcp", "", hostPort(f.a, "7001"))
	s := accept(t, p.aListener)
	if err := exchange(c, s, "new"); err != nil {
		t.Errorf("new connection to A's listener after the cut: %v", err)
	}
}

// checkTwinAlive: the other pair, with the same 4-tuples in other
// namespaces, still carries data both ways.
func checkTwinAlive(t *testing.T, twin *pair) {
	t.Helper()
	for _, s := range [][2]net.Conn{{twin.outA, twin.outB}, {twin.outB, twin.outA}, {twin.inA, twin.inB}, {twin.inB, twin.inA}} {
		if err := exchange(s[0], s[1], "after"); err != nil {
			t.Errorf("same-4-tuple session %s->%s in another namespace after the cut: %v", s[0].LocalAddr(), s[0].RemoteAddr(), err)
		}
	}
	if _, err := twin.udpConn.Write([]byte("udp")); err != nil {
		t.Errorf("same-4-tuple connected UDP socket in another namespace: %v", err)
	}
}

func TestListAndCutNeedNamespace(t *testing.T) {
	if _, err := List(t.Context(), nil); err == nil {
		t.Error("List(nil) succeeded; want an error (never the caller's namespace by accident)")
	}
	if _, err := Cut(t.Context(), nil); err == nil {
		t.Error("Cut(nil) succeeded; want an error")
	}
}

func TestLive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		proto string
		state State
		want  bool
	}{
		{"tcp", StateEstablished, true}, {"tcp", StateSynSent, true}, {"tcp", StateSynRecv, true},
		{"tcp", StateFinWait1, true}, {"tcp", StateFinWait2, true}, {"tcp", StateCloseWait, true},
		{"tcp", StateLastAck, true}, {"tcp", StateClosing, true},
		{"tcp", StateListen, false}, {"tcp", StateTimeWait, false}, {"tcp", StateClose, false},
		{"udp", StateEstablished, true}, {"udp", StateClose, false},
	}
	for _, tt := range tests {
		if got := (Socket{Proto: tt.proto, State: tt.state}).Live(); got != tt.want {
			t.Errorf("%s %s: Live() = %v, want %v", tt.proto, tt.state, got, tt.want)
		}
	}
}
