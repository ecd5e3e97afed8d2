package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// netns returns the path of the pod's network namespace, as its sandbox
// process holds it: /proc/PID/ns/net. A pod's processes are found by
// their cgroup, which names the pod's UID with either cgroup driver
// (cgroupfs: …/pod<UID>/…; systemd: …-pod<UID with _>.slice/…), whatever
// the container runtime. It waits a little for a pod still starting.
func (a *Agent) netns(ctx context.Context, pod *corev1.Pod) (podNetns, error) {
	var found podNetns
	var last error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		found, last = findNetns(a.cfg.ProcRoot, string(pod.UID))
		return last == nil, nil
	})
	if err != nil {
		if last != nil {
			return podNetns{}, last
		}
		return podNetns{}, err
	}
	return found, nil
}

var errNoProcess = errors.New("no process of the pod runs on this node")

// podNetns is the network namespace of a pod's sandbox, and how many of
// the pod's processes run in another one (not the host's).
type podNetns struct {
	path   string
	others int
}

// findNetns scans procRoot for the processes of the pod with uid and
// returns the network namespace of the one that started first: the
// sandbox's (the pause process), which holds the pod's interfaces. A
// process of the pod may make namespaces of its own (unshare -n): they
// have no way out, and must not be taken for the pod's.
func findNetns(procRoot, uid string) (podNetns, error) {
	host, err := os.Readlink(filepath.Join(procRoot, "self", "ns", "net"))
	if err != nil {
		return podNetns{}, fmt.Errorf("reading the host's network namespace: %w", err)
	}
	marks := [][]byte{[]byte("pod" + uid), []byte("pod" + strings.ReplaceAll(uid, "-", "_"))}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return podNetns{}, err
	}
	var found podNetns
	var firstStart uint64
	seen := map[string]bool{}
	for _, e := range entries {
		pid := e.Name()
		if _, err := strconv.Atoi(pid); err != nil {
			continue
		}
		cg, err := os.ReadFile(filepath.Join(procRoot, pid, "cgroup"))
		if err != nil || !(bytes.Contains(cg, marks[0]) || bytes.Contains(cg, marks[1])) {
			continue
		}
		ns := filepath.Join(procRoot, pid, "ns", "net")
		link, err := os.Readlink(ns)
		start, serr := startTime(filepath.Join(procRoot, pid, "stat"))
		if err != nil || serr != nil || link == host {
			continue
		}
		seen[link] = true
		if found.path == "" || start < firstStart {
			found.path, firstStart = ns, start
		}
	}
	if found.path == "" {
		return podNetns{}, fmt.Errorf("pod %s: %w", uid, errNoProcess)
	}
	found.others = len(seen) - 1
	return found, nil
}

// startTime is a process's start time, in clock ticks since boot: field
// 22 of /proc/PID/stat, counted after the command's closing parenthesis
// (the command may hold spaces and parentheses).
func startTime(stat string) (uint64, error) {
	b, err := os.ReadFile(stat)
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: no command", stat)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("%s: %d fields after the command", stat, len(f))
	}
	return strconv.ParseUint(f[19], 10, 64)
}
