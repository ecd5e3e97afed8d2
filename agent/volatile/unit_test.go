//go:build linux

package volatile

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"kir.dev/kir/agent/netcut"
)

func TestMatchPod(t *testing.T) {
	t.Parallel()
	const uid = "0f6b1a2c-3d4e-4f50-8a9b-0c1d2e3f4a5b"
	for _, tc := range []struct {
		name, uid, cgroup string
		want              bool
	}{
		{"cgroupfs v1", uid, "4:memory:/kubepods/burstable/pod" + uid + "/0123abcd\n", true},
		{"cgroupfs v2", uid, "0::/kubepods/besteffort/pod" + uid + "/0123abcd\n", true},
		{"systemd", uid, "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" +
			strings.ReplaceAll(uid, "-", "_") + ".slice/cri-containerd-0123.scope\n", true},
		{"another pod", uid, "0::/kubepods/pod1f6b1a2c-3d4e-4f50-8a9b-0c1d2e3f4a5b/x\n", false},
		{"host", uid, "0::/system.slice/kubelet.service\n", false},
		{"empty uid matches nothing", "", "0::/kubepods/pod" + uid + "/x\n", false},
	} {
		if got := MatchPod(tc.uid)([]byte(tc.cgroup)); got != tc.want {
			t.Errorf("%s: MatchPod(%q)(%q) = %v; want %v", tc.name, tc.uid, tc.cgroup, got, tc.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	t.Parallel()
	// A command made to confuse a parser: spaces and parentheses.
	b := []byte("4242 (a) b (c) Z 17 4242 4242 0 -1 4194560 95 0 0 0 0 0 0 0 20 0 1 0 987654 1 2 3\n")
	got, err := parseStat(b)
	if err != nil {
		t.Fatal(err)
	}
	want := stat{ppid: 17, state: "Z", comm: "a) b (c", start: 987654}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(stat{})); diff != "" {
		t.Errorf("parseStat (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"4242 no parens", "1 (x) S 1 2 3"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded; want an error", bad)
		}
	}
}

// TestParseIDs: the real and effective ids are told apart (a setuid
// binary's process has them differ).
func TestParseIDs(t *testing.T) {
	t.Parallel()
	var p Process
	err := parseIDs([]byte("Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t1001\t5\t5\t5\nGroups:\t\n"), &p)
	if err != nil {
		t.Fatal(err)
	}
	if p.UID != 1000 || p.EUID != 0 || p.GID != 1001 || p.EGID != 5 {
		t.Errorf("parseIDs: uid %d euid %d gid %d egid %d; want 1000 0 1001 5", p.UID, p.EUID, p.GID, p.EGID)
	}
	if err := parseIDs([]byte("Name:\tx\n"), &p); err == nil {
		t.Error("parseIDs without Uid/Gid succeeded")
	}
}

func TestCopyBounded(t *testing.T) {
	t.Parallel()
	src := bytes.Repeat([]byte("x"), 1000)
	for _, tc := range []struct {
		max     int64
		wantN   int64
		wantErr error
	}{{1000, 1000, nil}, {5000, 1000, nil}, {999, 999, ErrTooLarge}, {1, 1, ErrTooLarge}} {
		var w bytes.Buffer
		n, err := copyBounded(context.Background(), &w, bytes.NewReader(src), tc.max)
		if n != tc.wantN || !errors.Is(err, tc.wantErr) || int64(w.Len()) != tc.wantN {
			t.Errorf("copyBounded(1000 bytes, max %d) = %d, %v, wrote %d; want %d, %v", tc.max, n, err, w.Len(), tc.wantN, tc.wantErr)
		}
	}
}

func TestJoinSocketsAndTree(t *testing.T) {
	t.Parallel()
	procs := []Process{
		{PID: 10, PPID: 1, FDs: []FD{{0, "pipe:[5]"}, {3, "socket:[100]"}}},
		{PID: 11, PPID: 10, FDs: []FD{{3, "socket:[100]"}, {4, "socket:[100]"}, {5, "socket:[200]"}}},
		{PID: 12, PPID: 11},
		{PID: 20, PPID: 2, FDs: []FD{{7, "/tmp/socket:[300]"}}},
	}
	socks := []netcut.Socket{
		{Proto: "tcp", State: netcut.StateEstablished, Inode: 100, Remote: netip.MustParseAddrPort("10.0.0.9:443")},
		{Proto: "tcp", State: netcut.StateListen, Inode: 200},
		{Proto: "tcp", State: netcut.StateListen, Inode: 300},
		{Proto: "tcp", State: netcut.StateTimeWait},
		{Proto: "udp", State: netcut.StateClose, Inode: 400, Local: netip.MustParseAddrPort("0.0.0.0:53")},
	}
	got := JoinSockets(socks, procs)
	var pids [][]int
	var listening []bool
	for _, s := range got {
		pids = append(pids, s.PIDs)
		listening = append(listening, s.Listening())
	}
	if diff := cmp.Diff([][]int{{10, 11}, {11}, nil, nil, nil}, pids); diff != "" {
		t.Errorf("JoinSockets PIDs (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]bool{false, true, true, false, true}, listening); diff != "" {
		t.Errorf("Listening (-want +got):\n%s", diff)
	}
	roots := Tree(procs)
	var shape []string
	var walk func(prefix string, ns []*Node)
	walk = func(prefix string, ns []*Node) {
		for _, n := range ns {
			shape = append(shape, prefix+strconv.Itoa(n.Process.PID))
			walk(prefix+"  ", n.Children)
		}
	}
	walk("", roots)
	if diff := cmp.Diff([]string{"10", "  11", "    12", "20"}, shape); diff != "" {
		t.Errorf("Tree (-want +got):\n%s", diff)
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	p := Process{Cmdline: []string{"/app", "--token=hunter2", "hunter2"}}
	r := p.Redacted()
	if diff := cmp.Diff([]string{"/app", "[redacted]", "[redacted]"}, r.Cmdline); diff != "" {
		t.Errorf("Redacted (-want +got):\n%s", diff)
	}
	if p.Cmdline[1] != "--token=hunter2" {
		t.Error("Redacted changed the original's command line")
	}
}

// TestBounds: a command line and a descriptor table larger than their
// bounds are cut to them and marked so (an attacker's process may be built
// to exhaust its reader).
func TestBounds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte("/app\x00--a\x00--bb\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		max       int64
		want      []string
		truncated bool
	}{{100, []string{"/app", "--a", "--bb"}, false}, {14, []string{"/app", "--a", "--bb"}, false}, {10, []string{"/app", "--a", "-"}, true}, {8, []string{"/app", "--a"}, true}} {
		got, truncated, err := readCmdline(dir, tc.max)
		if err != nil || truncated != tc.truncated || !slices.Equal(got, tc.want) {
			t.Errorf("readCmdline(max %d) = %q, %v, %v; want %q, %v", tc.max, got, truncated, err, tc.want, tc.truncated)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "fd"), 0o700); err != nil {
		t.Fatal(err)
	}
	for i, target := range []string{"/dev/null", "socket:[7]", "pipe:[8]"} {
		if err := os.Symlink(target, filepath.Join(dir, "fd", strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	fds, truncated, err := readFDs(dir, 3)
	if err != nil || truncated || len(fds) != 3 || fds[1] != (FD{1, "socket:[7]"}) {
		t.Errorf("readFDs(max 3) = %v, %v, %v; want the 3 of them", fds, truncated, err)
	}
	if fds, truncated, err := readFDs(dir, 2); err != nil || !truncated || len(fds) != 2 {
		t.Errorf("readFDs(max 2) = %v, %v, %v; want 2, truncated", fds, truncated, err)
	}
}
