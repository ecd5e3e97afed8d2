//go:build linux

package netcut

import (
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestConntrack: B tracks connections (an iptables conntrack rule) and DNATs
// a "Service" address 10.99.0.1:80 to its "pod" address 10.77.0.3:7000. The
// pod's flows — direct over IPv4 and IPv6, and the DNAT one that names the pod
// only in its reply tuple — are deleted; B's other address keeps its flows.
func TestConntrack(t *testing.T) {
	a, b := newNS(t), newNS(t)
	link(t, a, b, []string{"10.77.0.1/24", "fd00:77::1/64"},
		[]string{"10.77.0.2/24", "10.77.0.3/24", "fd00:77::2/64", "fd00:77::3/64"})
	run(t, a, "ip", "route", "add", "10.99.0.0/24", "via", "10.77.0.2")
	run(t, b, "iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "NEW,ESTABLISHED", "-j", "ACCEPT")
	run(t, b, "ip6tables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "NEW,ESTABLISHED", "-j", "ACCEPT")
	run(t, b, "iptables", "-t", "nat", "-A", "PREROUTING", "-d", "10.99.0.1", "-p", "tcp", "--dport", "80",
		"-j", "DNAT", "--to-destination", "10.77.0.3:7000")
	l := listen(t, b, ":7000")
	for _, to := range []string{"10.77.0.3:7000", "10.99.0.1:80", "[fd00:77::3]:7000", "10.77.0.2:7000", "[fd00:77::2]:7000"} {
		dial(t, a, "tcp", "", to)
		accept(t, l)
	}
	ct, err := OpenConntrack(b)
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	checkDNATFlow(t, ct)

	pod := []netip.Addr{netip.MustParseAddr("10.77.0.3"), netip.MustParseAddr("fd00:77::3")}
	other4 := []netip.Addr{netip.MustParseAddr("10.77.0.2")}
	other6 := []netip.Addr{netip.MustParseAddr("fd00:77::2")}
	ctx := ctxT(t)
	wantCount(t, ct, pod, 3)
	wantCount(t, ct, other4, 1)
	n, err := ct.DeleteFlows(ctx, pod)
	if err != nil || n != 3 {
		t.Errorf("DeleteFlows(%v) = %d, %v; want 3 (direct v4, direct v6, DNAT), nil", pod, n, err)
	}
	wantCount(t, ct, pod, 0)
	wantCount(t, ct, other4, 1)
	wantCount(t, ct, other6, 1)
}

// checkDNATFlow makes sure the test built what it claims: a flow that names
// the pod only in its reply tuple.
func checkDNATFlow(t *testing.T, ct *Conntrack) {
	t.Helper()
	flows, err := ct.h.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range flows {
		if f.Forward.DstIP.String() == "10.99.0.1" && f.Reverse.SrcIP.String() == "10.77.0.3" &&
			f.Forward.SrcIP.String() == "10.77.0.1" && f.Reverse.DstIP.String() == "10.77.0.1" {
			return
		}
	}
	t.Fatalf("no DNAT flow 10.77.0.1->10.99.0.1 answered by 10.77.0.3 among %v", flows)
}

func wantCount(t *testing.T, ct *Conntrack, ips []netip.Addr, want int) {
	t.Helper()
	n, err := ct.CountFlows(ctxT(t), ips)
	if err != nil || n != want {
		t.Errorf("CountFlows(%v) = %d, %v; want %d", ips, n, err, want)
	}
}

func TestConntrackBadInput(t *testing.T) {
	ct, err := OpenConntrack(newNS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	for _, ips := range [][]netip.Addr{nil, {{}}} {
		if _, err := ct.DeleteFlows(ctxT(t), ips); err == nil {
			t.Errorf("DeleteFlows(%v) succeeded; want an error", ips)
		}
		if _, err := ct.CountFlows(ctxT(t), ips); err == nil {
			t.Errorf("CountFlows(%v) succeeded; want an error", ips)
		}
	}
}

// TestConntrackHost reads (only reads) the host's own table, as the agent
// does: the nil namespace opens the caller's.
func TestConntrackHost(t *testing.T) {
	needRoot(t)
	ct, err := OpenConntrack(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	// 192.0.2.1 and 2001:db8::1 are documentation addresses: no flow of
	// this machine names them.
	ips := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}
	if n, err := ct.CountFlows(ctxT(t), ips); err != nil || n != 0 {
		t.Errorf("CountFlows(%v) in the host namespace = %d, %v; want 0, nil", ips, n, err)
	}
}
