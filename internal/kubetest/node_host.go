package kubetest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// The real node changes the host; these are the things it changes, which
// cleanHost undoes both before the node starts (what a killed run left)
// and after it stops.
const (
	// nodeLockPath is flocked for the node's lifetime: one real node per
	// machine, whatever the test package.
	nodeLockPath = "/run/kir-test-node.lock"
	// sysctlRecordPath holds the sysctl values found before the node's
	// first start, so that a run killed before restoring them is undone
	// by the next start.
	sysctlRecordPath = "/run/kir-test-node.sysctl.json"
	// containerdState and containerdRoot are containerd's own; its socket
	// is in containerdState.
	containerdState  = "/run/kir-test-node"
	containerdRoot   = "/var/lib/kir-test-node"
	containerdSocket = containerdState + "/containerd.sock"
)

// nodeFixedPaths are the directories kubelet, containerd (its shims' and
// CRI's) and the CNI plugins use at fixed places: unmounted, then removed.
var nodeFixedPaths = []string{
	"/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/var/lib/cni",
	"/run/containerd", "/var/lib/kube-router", containerdState, containerdRoot,
}

// nodeSysctls are what kubelet (setupKernelTunables), the bridge CNI
// plugin (ip_forward) and br_netfilter users set.
var nodeSysctls = []string{
	"kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory", "vm/panic_on_oom",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward",
	"net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables",
}

// lockNode takes the machine-wide lock, waiting for another package's node
// to stop until ctx ends.
func lockNode(ctx context.Context) (*os.File, error) {
	f, err := os.OpenFile(nodeLockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the real node's lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", nodeLockPath, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %s (another test process runs a real node on this machine): %w", nodeLockPath, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// recordSysctls restores a record a killed run left, then records the
// values the node may change.
func recordSysctls() error {
	if err := restoreSysctls(); err != nil {
		return err
	}
	values := make(map[string]string, len(nodeSysctls))
	for _, key := range nodeSysctls {
		b, err := os.ReadFile("/proc/sys/" + key)
		if err != nil {
			return fmt.Errorf("reading sysctl %s: %w", key, err)
		}
		values[key] = strings.TrimSpace(string(b))
	}
	b, err := json.Marshal(values)
	if err != nil {
		return err
	}
	if err := os.WriteFile(sysctlRecordPath, b, 0o600); err != nil {
		return fmt.Errorf("recording sysctls: %w", err)
	}
	return nil
}

// restoreSysctls writes back the recorded values, if any, then removes the
// record.
func restoreSysctls() error {
	b, err := os.ReadFile(sysctlRecordPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the sysctl record: %w", err)
	}
	var values map[string]string
	if err := json.Unmarshal(b, &values); err != nil {
		return fmt.Errorf("decoding the sysctl record %s: %w", sysctlRecordPath, err)
	}
	var errs []error
	for key, v := range values {
		if err := os.WriteFile("/proc/sys/"+key, []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring sysctl %s=%s: %w", key, v, err))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, os.Remove(sysctlRecordPath))
	}
	return errors.Join(errs...)
}

// cleanHost removes what the node's processes leave on the host: the pods'
// processes and shims, their cgroups, mounts, fixed paths, kube-router's
// and kubelet's iptables chains, kube-router's ipsets, the bridge and its
// veths. Call it with none of the node's processes running.
func cleanHost(ctx context.Context) error {
	var errs []error
	killPodProcesses()
	errs = append(errs, removePodCgroups())
	errs = append(errs, unmountUnder(nodeFixedPaths, "/run/netns/cni-"))
	for _, p := range nodeFixedPaths {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", p, err))
		}
	}
	netns, _ := filepath.Glob("/run/netns/cni-*")
	for _, p := range netns {
		errs = append(errs, os.Remove(p))
	}
	errs = append(errs, removeKubeChains(ctx), destroyKubeRouterSets(ctx), deleteBridge(ctx))
	// Entries of the pods' addresses are stale; a failure here harms no one.
	_, _ = hostCmd(ctx, "conntrack", "-D", "-s", nodePodCIDR)
	_, _ = hostCmd(ctx, "conntrack", "-D", "-d", nodePodCIDR)
	return errors.Join(errs...)
}

// killPodProcesses kills the processes in kubelet's cgroups (the pods')
// and containerd's shims for this node's socket.
func killPodProcesses() {
	for _, dir := range podCgroupDirs() {
		_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			b, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
			killPIDs(strings.Fields(string(b)))
			return nil
		})
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var shims []string
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && strings.HasSuffix(args[0], "containerd-shim-runc-v2") && strings.Contains(string(b), containerdSocket) {
			shims = append(shims, filepath.Base(filepath.Dir(p)))
		}
	}
	killPIDs(shims)
}

func killPIDs(pids []string) {
	for _, s := range pids {
		var pid int
		if _, err := fmt.Sscan(s, &pid); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// podCgroupDirs are kubelet's cgroups (cgroupfs driver) in every hierarchy.
func podCgroupDirs() []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	if _, err := os.Stat("/sys/fs/cgroup/kubepods"); err == nil {
		dirs = append(dirs, "/sys/fs/cgroup/kubepods")
	}
	return dirs
}

// removePodCgroups removes kubelet's cgroups, deepest first, waiting a
// little for killed tasks to go.
func removePodCgroups() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []string
		for _, dir := range podCgroupDirs() {
			var all []string
			_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					all = append(all, path)
				}
				return nil
			})
			for i := len(all) - 1; i >= 0; i-- {
				if err := syscall.Rmdir(all[i]); err != nil && !errors.Is(err, syscall.ENOENT) {
					left = append(left, all[i])
				}
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("removing the pods' cgroups: %d left, e.g. %s", len(left), left[0])
		}
		killPodProcesses()
		time.Sleep(200 * time.Millisecond)
	}
}

// unmountUnder detaches every mount at or below the given paths, or whose
// mount point starts with one of the prefixes, deepest first.
func unmountUnder(paths []string, prefixes ...string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("reading mounts: %w", err)
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountPoint(fields[4])
		match := false
		for _, p := range paths {
			match = match || mp == p || strings.HasPrefix(mp, p+"/")
		}
		for _, p := range prefixes {
			match = match || strings.HasPrefix(mp, p)
		}
		if match {
			points = append(points, mp)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, mp := range points {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMountPoint undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPoint(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%3o", &c); err == nil {
				b.WriteByte(byte(c))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// hostCmd runs a host tool, its output in the error.
func hostCmd(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
