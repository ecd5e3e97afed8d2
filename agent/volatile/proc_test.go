//go:build linux

package volatile

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"kir.dev/kir/agent/netcut"
)

// needRoot skips a test that needs root, or fails it when CI=true.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("volatile tests need root (other users' /proc, cgroups, setns); CI=true must provide it")
	}
	t.Skip("volatile tests need root (other users' /proc, cgroups, setns)")
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func randomUID(t *testing.T) string {
	h := randomHex(t, 16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// podCgroups makes two cgroups named as the kubelet names a pod's, one per
// cgroup driver, on a cgroup hierarchy of this machine (v2, or a v1 one
// without controllers), and returns functions moving a process into each.
// It returns nil if no hierarchy can be written to. The cgroups are removed
// after the test, so processes put there must be ended first: register
// their cleanup after this.
func podCgroups(t *testing.T, uid string) (cgroupfs, systemd func(pid int)) {
	t.Helper()
	for _, base := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"} {
		var fs unix.Statfs_t
		if unix.Statfs(base, &fs) != nil || (fs.Type != unix.CGROUP2_SUPER_MAGIC && fs.Type != unix.CGROUP_SUPER_MAGIC) {
			continue
		}
		top := filepath.Join(base, "kir-volatile-test-"+randomHex(t, 4))
		a := filepath.Join(top, "kubepods", "burstable", "pod"+uid)
		b := filepath.Join(top, "kubepods-burstable-pod"+strings.ReplaceAll(uid, "-", "_")+".slice")
		if os.MkdirAll(a, 0o755) != nil || os.Mkdir(b, 0o755) != nil {
			removeCgroups(top, a, b)
			continue
		}
		t.Cleanup(func() { removeCgroups(top, a, b) })
		enter := func(dir string) func(int) {
			return func(pid int) {
				t.Helper()
				if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
					t.Fatalf("moving process %d into cgroup %s: %v", pid, dir, err)
				}
			}
		}
		t.Logf("pod cgroups under %s", top)
		return enter(a), enter(b)
	}
	return nil, nil
}

// removeCgroups removes the test's cgroups, waiting a little for the
// processes killed to leave them (an orphan is reaped by init).
func removeCgroups(top, a, b string) {
	deadline := time.Now().Add(5 * time.Second)
	for _, d := range []string{a, filepath.Dir(a), filepath.Dir(filepath.Dir(a)), b, top} {
		// rmdir: a cgroup directory holds only the kernel's files.
		for os.Remove(d) != nil && !errors.Is(os.Remove(d), os.ErrNotExist) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// newNS creates a throwaway network namespace with lo up, as agent/netcut's
// tests do.
func newNS(t *testing.T) *netcut.NS {
	t.Helper()
	type result struct {
		ns  *netcut.NS
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// This thread never returns to the host namespace: it stays
		// locked and Go discards it when the goroutine ends.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		ns, err := netcut.OpenNS("/proc/thread-self/ns/net")
		ch <- result{ns, err}
	}()
	r := <-ch
	if r.err != nil {
		t.Fatalf("creating a network namespace: %v", r.err)
	}
	t.Cleanup(func() { r.ns.Close() })
	if err := r.ns.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		t.Fatal(err)
	}
	return r.ns
}

// start starts cmd inside ns (a forked child keeps the namespace of the
// thread that forked it, which Do locks into ns), with stdin a pipe held
// open until the test ends, and kills and reaps it after the test. A
// binary just written may be busy for a moment (another fork may still hold
// it open for writing): start retries then.
func start(t *testing.T, ns *netcut.NS, cmd *exec.Cmd) (stdin io.WriteCloser) {
	t.Helper()
	for try := 0; ; try++ {
		c := exec.Command(cmd.Path, cmd.Args[1:]...)
		c.Env, c.Dir, c.Stdout = cmd.Env, cmd.Dir, cmd.Stdout
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its own group, killed whole
		if cmd.SysProcAttr != nil {
			c.SysProcAttr.Credential = cmd.SysProcAttr.Credential
		}
		w, err := c.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if ns != nil {
			err = ns.Do(c.Start)
		} else {
			err = c.Start()
		}
		if errors.Is(err, syscall.ETXTBSY) && try < 50 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("starting %v: %v", cmd.Args, err)
		}
		t.Cleanup(func() {
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			c.Wait()
		})
		*cmd = *c
		return w
	}
}

// poll calls cond until it returns true, failing the test after 10s.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func find(procs []Process, pid int) (Process, bool) {
	for _, p := range procs {
		if p.PID == pid {
			return p, true
		}
	}
	return Process{}, false
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pod is a pod's worth of real processes, as an attacker would leave them.
type pod struct {
	uid                   string
	ns                    *netcut.NS
	busybox               []byte // the original binary's bytes
	busyboxPath           string
	implantPath, dir      string
	implant, listener, sh *exec.Cmd
	child                 int // sh's child, sleep
	peerPort              int
	envSecret, argSecret  string
	// list lists the pod's processes: by MatchPod when the machine let the
	// test make cgroups, by PID otherwise.
	list func(ctx context.Context, opts Options) ([]Process, error)
}

// newPod starts, all with a secret in their environment:
//   - the implant: a copy of busybox, started from a temporary directory
//     and then deleted, running "nc" connected to a peer (the test's own
//     listener, not the pod's) inside a throwaway network namespace;
//   - a listener: busybox "nc -l -p 7001" in that namespace;
//   - a shell of user 4242:4343 with a secret argument and a child (sleep).
//
// The first two go into a cgroupfs-style pod cgroup, the shell into a
// systemd-style one (its child follows it).
func newPod(t *testing.T) *pod {
	needRoot(t)
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("needs busybox (nc, sleep): ", err)
	}
	p := &pod{uid: randomUID(t), dir: t.TempDir(), envSecret: "env-" + randomHex(t, 16), argSecret: "arg-" + randomHex(t, 16)}
	if p.busyboxPath, err = filepath.EvalSymlinks(busybox); err != nil {
		t.Fatal(err)
	}
	if p.busybox, err = os.ReadFile(p.busyboxPath); err != nil {
		t.Fatal(err)
	}
	inCgroupfs, inSystemd := podCgroups(t, p.uid)
	p.ns = newNS(t)
	env := append(os.Environ(), "KIR_TEST_TOKEN="+p.envSecret)

	var peer net.Listener
	if err := p.ns.Do(func() (err error) { peer, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	p.peerPort = peer.Addr().(*net.TCPAddr).Port

	p.implantPath = filepath.Join(p.dir, "busybox")
	if err := os.WriteFile(p.implantPath, p.busybox, 0o755); err != nil {
		t.Fatal(err)
	}
	p.implant = &exec.Cmd{Path: p.implantPath, Args: []string{p.implantPath, "nc", "127.0.0.1", strconv.Itoa(p.peerPort)}, Env: env, Dir: p.dir}
	start(t, p.ns, p.implant)
	if err := os.Remove(p.implantPath); err != nil {
		t.Fatal(err)
	}
	peer.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	conn, err := peer.Accept()
	if err != nil {
		t.Fatalf("the implant did not connect: %v", err)
	}
	t.Cleanup(func() { conn.Close() })

	p.listener = &exec.Cmd{Path: p.busyboxPath, Args: []string{"busybox", "nc", "-l", "-p", "7001"}, Env: env}
	start(t, p.ns, p.listener)

	p.sh = &exec.Cmd{Path: "/bin/sh", Args: []string{"/bin/sh", "-c", "read go; sleep 1000; exit 0", "sh", p.argSecret},
		Env: env, Dir: "/", SysProcAttr: &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4242, Gid: 4343}}}
	shIn := start(t, nil, p.sh)

	p.list = func(ctx context.Context, opts Options) ([]Process, error) {
		return Processes(ctx, "/proc", MatchPod(p.uid), opts)
	}
	if inCgroupfs != nil {
		inCgroupfs(p.implant.Process.Pid)
		inCgroupfs(p.listener.Process.Pid)
		inSystemd(p.sh.Process.Pid)
	} else {
		t.Log("no cgroup hierarchy to write to: matching by PID, MatchPod not exercised on real cgroups")
		p.list = func(ctx context.Context, opts Options) ([]Process, error) {
			return scan(ctx, "/proc", func(pid int, _ []byte) bool {
				st, _ := readStat("/proc/" + strconv.Itoa(pid))
				return pid == p.implant.Process.Pid || pid == p.listener.Process.Pid ||
					pid == p.sh.Process.Pid || st.ppid == p.sh.Process.Pid
			}, opts)
		}
	}
	// The shell forks its child only now, inside the pod's cgroup.
	if _, err := io.WriteString(shIn, "go\n"); err != nil {
		t.Fatal(err)
	}
	poll(t, "the shell's child", func() bool {
		procs, err := p.list(context.Background(), Options{})
		for _, q := range procs {
			if q.PPID == p.sh.Process.Pid && q.Comm == "sleep" {
				p.child = q.PID
			}
		}
		return err == nil && p.child != 0
	})
	poll(t, "the pod's listener on port 7001", func() bool {
		socks, err := netcut.List(context.Background(), p.ns)
		for _, s := range socks {
			if s.State == netcut.StateListen && s.Local.Port() == 7001 {
				return true
			}
		}
		if err != nil {
			t.Logf("listing sockets: %v", err)
		}
		return false
	})
	return p
}

// TestProcesses: the pod's four processes, and only them, each as /proc
// shows it; the deleted implant's hash is the original binary's.
func TestProcesses(t *testing.T) {
	before := time.Now()
	p := newPod(t)
	procs, err := p.list(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, q := range procs {
		pids = append(pids, q.PID)
		if len(q.Errors) > 0 {
			t.Errorf("process %d (%s): errors %q", q.PID, q.Comm, q.Errors)
		}
		if q.Start.Before(before.Add(-2*time.Second)) || q.Start.After(time.Now().Add(2*time.Second)) || q.StartTicks == 0 {
			t.Errorf("process %d (%s): start %v (%d ticks); want between %v and now", q.PID, q.Comm, q.Start, q.StartTicks, before)
		}
	}
	want := []int{p.implant.Process.Pid, p.listener.Process.Pid, p.sh.Process.Pid, p.child}
	slices.Sort(want)
	if !slices.Equal(pids, want) {
		t.Fatalf("pod processes %v; want %v (implant, listener, shell, its child)", pids, want)
	}

	imp, _ := find(procs, p.implant.Process.Pid)
	if imp.Exe != p.implantPath+" (deleted)" || !imp.ExeDeleted {
		t.Errorf("implant exe %q, deleted %v; want %q, true", imp.Exe, imp.ExeDeleted, p.implantPath+" (deleted)")
	}
	if imp.ExeSHA256 != sum(p.busybox) || imp.ExeSize != int64(len(p.busybox)) || imp.ExeTooLarge {
		t.Errorf("implant exe hash %s (%d bytes, too large %v); want the original's %s (%d bytes)",
			imp.ExeSHA256, imp.ExeSize, imp.ExeTooLarge, sum(p.busybox), len(p.busybox))
	}
	var orig unix.Stat_t
	if err := unix.Stat(p.busyboxPath, &orig); err != nil {
		t.Fatal(err)
	}
	if imp.ExeInode == 0 || imp.ExeInode == orig.Ino {
		t.Errorf("implant exe inode %d; want the deleted copy's, not 0 nor the original's %d", imp.ExeInode, orig.Ino)
	}
	if lis, _ := find(procs, p.listener.Process.Pid); lis.ExeInode != orig.Ino || lis.ExeDevice != orig.Dev {
		t.Errorf("listener exe device %d inode %d; want the original's %d %d", lis.ExeDevice, lis.ExeInode, orig.Dev, orig.Ino)
	}
	if imp.Cwd != p.dir || imp.PPID != os.Getpid() || imp.UID != 0 || imp.Comm != "busybox" {
		t.Errorf("implant cwd %q ppid %d uid %d comm %q; want %q %d 0 busybox", imp.Cwd, imp.PPID, imp.UID, imp.Comm, p.dir, os.Getpid())
	}
	if strings.Join(imp.Cmdline, " ") != strings.Join(p.implant.Args, " ") {
		t.Errorf("implant cmdline %q; want %q", imp.Cmdline, p.implant.Args)
	}
	if len(imp.FDs) < 4 || imp.FDs[0].Num != 0 || !strings.HasPrefix(imp.FDs[0].Target, "pipe:[") || !hasSocket(imp.FDs) {
		t.Errorf("implant fds %v; want stdin a pipe and a socket among them", imp.FDs)
	}

	lis, _ := find(procs, p.listener.Process.Pid)
	if lis.Exe != p.busyboxPath || lis.ExeDeleted || lis.ExeSHA256 != sum(p.busybox) {
		t.Errorf("listener exe %q deleted %v sha256 %s; want %q false %s", lis.Exe, lis.ExeDeleted, lis.ExeSHA256, p.busyboxPath, sum(p.busybox))
	}
	for _, pid := range []int{p.sh.Process.Pid, p.child} {
		q, _ := find(procs, pid)
		if q.UID != 4242 || q.EUID != 4242 || q.GID != 4343 || q.EGID != 4343 || q.Cwd != "/" || q.ExeSHA256 == "" {
			t.Errorf("process %d (%s): uid %d euid %d gid %d egid %d cwd %q sha256 %q; want 4242 4242 4343 4343 / and a hash",
				pid, q.Comm, q.UID, q.EUID, q.GID, q.EGID, q.Cwd, q.ExeSHA256)
		}
	}
	if c, _ := find(procs, p.child); c.PPID != p.sh.Process.Pid {
		t.Errorf("the shell's child has ppid %d; want %d", c.PPID, p.sh.Process.Pid)
	}

	roots := Tree(procs)
	var shape []string
	for _, r := range roots {
		shape = append(shape, strconv.Itoa(r.Process.PID))
		for _, c := range r.Children {
			shape = append(shape, strconv.Itoa(r.Process.PID)+">"+strconv.Itoa(c.Process.PID))
		}
	}
	wantShape := []string{strconv.Itoa(p.implant.Process.Pid), strconv.Itoa(p.listener.Process.Pid),
		strconv.Itoa(p.sh.Process.Pid), strconv.Itoa(p.sh.Process.Pid) + ">" + strconv.Itoa(p.child)}
	if strings.Join(shape, " ") != strings.Join(wantShape, " ") {
		t.Errorf("tree %v; want %v", shape, wantShape)
	}

	// The hash bound: a binary larger than it is not hashed.
	small, err := p.list(t.Context(), Options{MaxHashBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if q, _ := find(small, p.implant.Process.Pid); !q.ExeTooLarge || q.ExeSHA256 != "" || q.ExeSize != int64(len(p.busybox)) {
		t.Errorf("with a 1000-byte bound: implant too large %v, sha256 %q, size %d; want true, none, %d", q.ExeTooLarge, q.ExeSHA256, q.ExeSize, len(p.busybox))
	}
}

func hasSocket(fds []FD) bool {
	for _, f := range fds {
		if _, ok := f.SocketInode(); ok {
			return true
		}
	}
	return false
}

// TestCopyExe: the deleted implant's bytes come back whole through
// /proc/PID/exe; a bound too small copies nothing; a PID that no longer
// names the process scanned copies nothing.
func TestCopyExe(t *testing.T) {
	p := newPod(t)
	procs, err := p.list(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	imp, ok := find(procs, p.implant.Process.Pid)
	if !ok {
		t.Fatal("implant not listed")
	}
	var buf bytes.Buffer
	n, got, err := CopyExe(t.Context(), "/proc", imp, &buf, 64<<20)
	if err != nil || n != int64(len(p.busybox)) || got != sum(p.busybox) || !bytes.Equal(buf.Bytes(), p.busybox) {
		t.Errorf("CopyExe = %d, %s, %v (bytes equal: %v); want %d, %s, nil and the original bytes",
			n, got, err, bytes.Equal(buf.Bytes(), p.busybox), len(p.busybox), sum(p.busybox))
	}
	buf.Reset()
	if _, _, err := CopyExe(t.Context(), "/proc", imp, &buf, 1000); !errors.Is(err, ErrTooLarge) || buf.Len() != 0 {
		t.Errorf("CopyExe with a 1000-byte bound: %v, %d bytes written; want ErrTooLarge, none", err, buf.Len())
	}
	other := imp
	other.ExeInode++
	if _, _, err := CopyExe(t.Context(), "/proc", other, &buf, 64<<20); !errors.Is(err, ErrExeChanged) || buf.Len() != 0 {
		t.Errorf("CopyExe of another executable: %v, %d bytes written; want ErrExeChanged, none", err, buf.Len())
	}
	reused := imp
	reused.StartTicks++
	if _, _, err := CopyExe(t.Context(), "/proc", reused, &buf, 64<<20); !errors.Is(err, ErrGone) || buf.Len() != 0 {
		t.Errorf("CopyExe of another start time: %v, %d bytes written; want ErrGone, none", err, buf.Len())
	}
}

// TestSockets: in the pod's namespace, the implant's connection to its
// peer joins to the implant, the listening port to the listener, and the
// peer's own sockets (the test's, not the pod's) to no process of the pod.
func TestSockets(t *testing.T) {
	p := newPod(t)
	procs, err := p.list(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	socks, err := Sockets(t.Context(), p.ns, procs)
	if err != nil {
		t.Fatal(err)
	}
	var conn, listen, peer bool
	for _, s := range socks {
		switch {
		case s.Proto == "tcp" && s.State == netcut.StateEstablished && int(s.Remote.Port()) == p.peerPort:
			conn = true
			if !slices.Equal(s.PIDs, []int{p.implant.Process.Pid}) || s.Listening() {
				t.Errorf("connection to the peer %v: pids %v, listening %v; want [%d] (the implant), false", s, s.PIDs, s.Listening(), p.implant.Process.Pid)
			}
		case s.State == netcut.StateListen && s.Local.Port() == 7001:
			listen = true
			if !slices.Equal(s.PIDs, []int{p.listener.Process.Pid}) || !s.Listening() {
				t.Errorf("listening port 7001 %v: pids %v, listening %v; want [%d], true", s, s.PIDs, s.Listening(), p.listener.Process.Pid)
			}
		case int(s.Local.Port()) == p.peerPort:
			peer = true
			if len(s.PIDs) != 0 {
				t.Errorf("the peer's socket %v is given pod pids %v; want none", s, s.PIDs)
			}
		}
	}
	if !conn || !listen || !peer {
		t.Errorf("sockets %v: found connection %v, listener %v, peer %v; want all", socks, conn, listen, peer)
	}
}

// TestNoEnviron: the processes' environment holds a secret (checked in
// /proc/PID/environ, so reading it would leak it); nothing the package
// returns holds it. The argv secret is there unless redacted.
func TestNoEnviron(t *testing.T) {
	p := newPod(t)
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.implant.Process.Pid))
	if err != nil || !bytes.Contains(env, []byte(p.envSecret)) {
		t.Fatalf("the implant's environ does not hold the secret (%v): the test proves nothing", err)
	}
	procs, err := p.list(t.Context(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	socks, err := Sockets(t.Context(), p.ns, procs)
	if err != nil {
		t.Fatal(err)
	}
	var exe bytes.Buffer
	imp, _ := find(procs, p.implant.Process.Pid)
	if _, _, err := CopyExe(t.Context(), "/proc", imp, &exe, 64<<20); err != nil {
		t.Fatal(err)
	}
	var redacted []Process
	for _, q := range procs {
		redacted = append(redacted, q.Redacted())
	}
	all := bytes.Join([][]byte{mustJSON(t, procs), mustJSON(t, socks), mustJSON(t, Tree(procs)),
		[]byte(fmt.Sprintf("%+v %+v", procs, socks)), exe.Bytes()}, nil)
	if bytes.Contains(all, []byte(p.envSecret)) {
		t.Error("an environment secret appears in the output")
	}
	if !bytes.Contains(all, []byte(p.argSecret)) {
		t.Error("the shell's argument is not in its command line")
	}
	if r := mustJSON(t, redacted); bytes.Contains(r, []byte(p.argSecret)) || !bytes.Contains(r, []byte(`"/bin/sh","[redacted]"`)) {
		t.Errorf("redacted processes still hold the argument secret, or lost argv[0]: %s", r)
	}
}
