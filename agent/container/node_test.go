//go:build linux

package container

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These helpers build, on this machine, what a runtime builds for a pod:
// cgroups named by either driver, overlay root file systems, processes in
// their own mount namespace rooted there.

// needRoot skips a test that needs root, or fails it when CI=true.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("container tests need root (mounts, cgroups, chroot); CI=true must provide it")
	}
	t.Skip("container tests need root (mounts, cgroups, chroot)")
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

// hierarchies are the cgroup hierarchies the tests put processes in, by
// their mount point: the v1 freezer (what Freeze uses when there is one)
// and pids, and v2.
func hierarchies(t *testing.T) (v1 []string, v2 string) {
	t.Helper()
	magic := func(p string) int64 {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) != nil {
			return 0
		}
		return int64(st.Type)
	}
	for _, d := range []string{"/sys/fs/cgroup/freezer", "/sys/fs/cgroup/pids"} {
		if magic(d) == unix.CGROUP_SUPER_MAGIC {
			v1 = append(v1, d)
		}
	}
	for _, d := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if magic(d) == unix.CGROUP2_SUPER_MAGIC {
			v2 = d
		}
	}
	if v2 == "" && len(v1) == 0 {
		t.Skip("no cgroup hierarchy mounted under /sys/fs/cgroup")
	}
	return v1, v2
}

// cgroup makes the cgroup rel (a path) on every hierarchy, and returns a
// function moving a process into it. On cleanup its processes are killed
// and the directories up to rel's first component removed.
func cgroup(t *testing.T, rel string) func(pid int) {
	t.Helper()
	v1, v2 := hierarchies(t)
	dirs := []string{}
	for _, h := range append(v1, v2) {
		if h == "" {
			continue
		}
		d := filepath.Join(h, rel)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("making cgroup %s: %v", d, err)
		}
		dirs = append(dirs, d)
		t.Cleanup(func() { removeCgroup(t, h, rel) })
	}
	return func(pid int) {
		t.Helper()
		for _, d := range dirs {
			if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
				t.Fatalf("moving process %d into %s: %v", pid, d, err)
			}
		}
	}
}

// removeCgroup kills what is left in rel and removes it, then its parents
// up to its first component that no other test cgroup still holds.
func removeCgroup(t *testing.T, h, rel string) {
	d := filepath.Join(h, rel)
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		// A frozen cgroup keeps its killed processes until thawed.
		os.WriteFile(filepath.Join(d, "freezer.state"), []byte("THAWED"), 0)
		os.WriteFile(filepath.Join(d, "cgroup.freeze"), []byte("0"), 0)
		err := os.Remove(d)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("removing cgroup %s: %v", d, err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	for p := filepath.Dir(rel); p != "." && p != "/"; p = filepath.Dir(p) {
		if os.Remove(filepath.Join(h, p)) != nil {
			return // another test cgroup is still inside
		}
	}
}

// overlayRoot mounts, on a tmpfs of its own, an overlay whose lower layer
// holds busybox, with its upper directory named upperName, and returns the
// merged directory and the upper directory.
func overlayRoot(t *testing.T, upperName string) (merged, upper string) {
	t.Helper()
	base := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(base, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", base, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(base, unix.MNT_DETACH) })
	lower, upper, work, merged := filepath.Join(base, "lower"), filepath.Join(base, upperName), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{filepath.Join(lower, "bin"), upper, work, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, "/bin/busybox", filepath.Join(lower, "bin", "busybox"))
	// sh gives a background job /dev/null for its input.
	if err := os.Mkdir(filepath.Join(lower, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(lower, "dev", "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	esc := strings.NewReplacer(`\`, `\\`, `,`, `\,`, `:`, `\:`)
	opts := "lowerdir=" + esc.Replace(lower) + ",upperdir=" + esc.Replace(upper) + ",workdir=" + esc.Replace(work)
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		if errors.Is(err, unix.ENODEV) && os.Getenv("CI") != "true" {
			t.Skipf("no overlay file system: %v", err)
		}
		t.Fatalf("mounting overlay %s: %v", opts, err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
	return merged, upper
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Skipf("no busybox to run in the container: %v", err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// start runs busybox sh -c script: in its own mount namespace chrooted to
// root when root is set, as a runtime runs a container's first process. It
// waits, before running the script, until enter has put it in its cgroup,
// so the processes it starts are born there. The process and its children
// are killed on cleanup.
func start(t *testing.T, root, script string, enter func(int)) int {
	t.Helper()
	cmd := exec.Command("/bin/busybox", "sh", "-c", "read go; "+script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if root != "" {
		cmd.SysProcAttr.Unshareflags, cmd.SysProcAttr.Chroot, cmd.Dir = unix.CLONE_NEWNS, root, "/"
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t.Cleanup(func() {
		if stderr.Len() > 0 {
			t.Logf("stderr of %q: %s", script, stderr.String())
		}
	})
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %q: %v", script, err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		syscall.Kill(-pid, syscall.SIGKILL)
		cmd.Wait()
	})
	enter(pid)
	if _, err := io.WriteString(in, "go\n"); err != nil {
		t.Fatal(err)
	}
	return pid
}

// waitProcs waits until the cgroup rel of the first hierarchy holds n
// processes, and returns them.
func waitProcs(t *testing.T, rel string, n int) []int {
	t.Helper()
	v1, v2 := hierarchies(t)
	h := v2
	if len(v1) > 0 {
		h = v1[0]
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(h, rel, "cgroup.procs"))
		if err != nil {
			t.Fatal(err)
		}
		var pids []int
		for _, f := range strings.Fields(string(b)) {
			p, _ := strconv.Atoi(f)
			pids = append(pids, p)
		}
		if len(pids) == n {
			return pids
		}
		if time.Now().After(deadline) {
			t.Fatalf("cgroup %s holds %v, want %d processes", rel, pids, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFile waits until path exists.
func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
