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

// netns returns the path of the pod's network namespace, as one of its
// processes holds it: /proc/PID/ns/net. A pod's processes are found by
// their cgroup, which names the pod's UID with either cgroup driver
// (cgroupfs: …/pod<UID>/…; systemd: …-pod<UID with _>.slice/…), whatever
// the container runtime. It waits a little for a pod still starting.
func (a *Agent) netns(ctx context.Context, pod *corev1.Pod) (string, error) {
	var path string
	var last error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		path, last = findNetns(a.cfg.ProcRoot, string(pod.UID))
		return last == nil, nil
	})
	if err != nil {
		if last != nil {
			return "", last
		}
		return "", err
	}
	return path, nil
}

var errNoProcess = errors.New("no process of the pod runs on this node")

// findNetns scans procRoot for a process of the pod with uid that is not
// in the host's network namespace, the agent's own (hostNetwork).
func findNetns(procRoot, uid string) (string, error) {
	host, err := os.Readlink(filepath.Join(procRoot, "self", "ns", "net"))
	if err != nil {
		return "", fmt.Errorf("reading the host's network namespace: %w", err)
	}
	marks := [][]byte{[]byte("pod" + uid), []byte("pod" + strings.ReplaceAll(uid, "-", "_"))}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cg, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "cgroup"))
		if err != nil || !(bytes.Contains(cg, marks[0]) || bytes.Contains(cg, marks[1])) {
			continue
		}
		ns := filepath.Join(procRoot, e.Name(), "ns", "net")
		if link, err := os.Readlink(ns); err == nil && link != host {
			return ns, nil
		}
	}
	return "", fmt.Errorf("pod %s: %w", uid, errNoProcess)
}
