//go:build linux

package netcut

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	a, b := newNS(t), newNS(t)
	link(t, a, b, []string{"10.77.0.1/24", "fd00:77::1/64"}, []string{"10.77.0.2/24", "fd00:77::2/64"})
	listen(t, b, ":7000") // dual stack
	listen(t, b, ":7002")
	listen(t, b, ":7003")
	run(t, b, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "7002", "-j", "DROP")
	run(t, b, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "7003", "-j", "REJECT", "--reject-with", "icmp-host-unreachable")
	run(t, b, "ip6tables", "-A", "INPUT", "-p", "tcp", "--dport", "7002", "-j", "DROP")
	host := listen(t, nil, "127.0.0.1:0") // the test's own namespace: the host
	hostAddr := host.Addr().(*net.TCPAddr).AddrPort()

	tests := []struct {
		name string
		ns   *NS
		addr string
		want Outcome
	}{
		{"listener", a, "10.77.0.2:7000", Connected},
		{"listener v6", a, "[fd00:77::2]:7000", Connected},
		{"closed port", a, "10.77.0.2:7999", Refused},
		{"closed port v6", a, "[fd00:77::2]:7999", Refused},
		{"DROP rule", a, "10.77.0.2:7002", TimedOut},
		{"DROP rule v6", a, "[fd00:77::2]:7002", TimedOut},
		{"REJECT host-unreachable", a, "10.77.0.2:7003", Unreachable},
		{"no route", a, "10.99.99.1:80", Unreachable},
		{"host control probe", nil, hostAddr.String(), Connected},
		// The same address from inside A reaches A's own loopback, where
		// nothing listens: proof that the probe runs in the namespace.
		{"host's loopback from the namespace", a, hostAddr.String(), Refused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const timeout = 700 * time.Millisecond
			r := Probe(ctxT(t), tt.ns, netip.MustParseAddrPort(tt.addr), timeout)
			if r.Outcome != tt.want {
				t.Errorf("Probe(%s) = %s (%s) after %v; want %s", tt.addr, r.Outcome, r.Err, r.Elapsed, tt.want)
			}
			if (r.Err == "") != (tt.want == Connected) {
				t.Errorf("Probe(%s).Err = %q with outcome %s", tt.addr, r.Err, r.Outcome)
			}
			if tt.want == TimedOut && r.Elapsed < timeout {
				t.Errorf("Probe(%s) timed out after %v, before its %v timeout", tt.addr, r.Elapsed, timeout)
			}
		})
	}
}

func TestProbeClosedNamespace(t *testing.T) {
	ns := newNS(t)
	ns.Close()
	r := Probe(ctxT(t), ns, netip.MustParseAddrPort("10.77.0.2:7000"), time.Second)
	if r.Outcome != Failed || r.Err == "" {
		t.Errorf("Probe from a closed namespace = %s (%q); want %s with an error", r.Outcome, r.Err, Failed)
	}
}
