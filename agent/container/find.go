//go:build linux

package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"kir.dev/kir/agent/volatile"
)

// Kinds of container, as the pod's status lists them.
const (
	KindContainer = "container"
	KindInit      = "init"
	KindEphemeral = "ephemeral"
)

// Container is one container of a pod as found on the node.
type Container struct {
	Name string `json:"name"`
	// Kind is KindContainer, KindInit or KindEphemeral.
	Kind string `json:"kind"`
	// ID is the runtime's id, without the "containerd://" scheme
	// (Runtime holds the scheme).
	ID      string `json:"id"`
	Runtime string `json:"runtime,omitempty"`
	// PIDs are the processes whose /proc/PID/cgroup names the container,
	// sorted; empty for a container that is not running.
	PIDs []int `json:"pids"`
	// Leader is the container's first process: earliest start time,
	// lowest PID on ties. 0 when there is none.
	Leader int `json:"leader,omitempty"`
	// Cgroup is the container's cgroup, as the leader's /proc/PID/cgroup
	// names it, cut after the component naming the container (so a
	// sub-cgroup the container made is inside it): the v1 freezer
	// hierarchy's line when there is one (CgroupV1), else the v2 "0::"
	// line. It is relative to the reader's cgroup namespace: in a private
	// one it starts with "/.." (see [Freeze]).
	Cgroup   string `json:"cgroup,omitempty"`
	CgroupV1 bool   `json:"cgroupV1,omitempty"`
	// Upper is the host path of the overlay upper directory of the
	// leader's root file system, as the kernel reports it (read it
	// through [HostPath]); empty if the root is not overlay.
	Upper string `json:"upper,omitempty"`
	// Errors says what could not be found, and why.
	Errors []string `json:"errors,omitempty"`
}

// Pod is what [Find] found of a pod on the node.
type Pod struct {
	// Containers are those with a runtime id in the pod's status, in the
	// status's order: containers, init containers, ephemeral containers.
	Containers []Container `json:"containers"`
	// SandboxPIDs are the pod's processes (by its cgroup) in none of its
	// containers: the sandbox's (pause), or a container's the status does
	// not list.
	SandboxPIDs []int `json:"sandboxPIDs"`
	// Notes name what is odd: a process whose cgroup lines name different
	// containers, a status id that cannot name a cgroup.
	Notes []string `json:"notes,omitempty"`
}

// ContainerOf returns the name of the container holding pid, "" for a
// sandbox process; false if pid is not one of the pod's processes found.
func (p Pod) ContainerOf(pid int) (string, bool) {
	for _, c := range p.Containers {
		if slices.Contains(c.PIDs, pid) {
			return c.Name, true
		}
	}
	return "", slices.Contains(p.SandboxPIDs, pid)
}

// Find finds the processes of pod's containers under procRoot (the host's
// /proc), each container's leader, cgroup and overlay upper directory. It
// fails only if the pod has no UID, procRoot cannot be listed or ctx ends;
// what cannot be found of one container is in its Errors.
func Find(ctx context.Context, procRoot string, pod *corev1.Pod) (Pod, error) {
	if pod == nil || pod.UID == "" {
		return Pod{}, errors.New("finding containers: pod has no UID")
	}
	found := Pod{Containers: statuses(pod), SandboxPIDs: []int{}}
	m, notes := newMatcher(found.Containers)
	found.Notes = notes
	procs, err := scan(ctx, procRoot, volatile.MatchPod(string(pod.UID)))
	if err != nil {
		return Pod{}, fmt.Errorf("finding containers of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	leaders := make([]*proc, len(found.Containers))
	for i := range procs {
		p := &procs[i]
		idx, cut, note := m.classify(p.cgroup)
		if note != "" {
			found.Notes = append(found.Notes, fmt.Sprintf("process %d: %s", p.pid, note))
		}
		if idx < 0 {
			found.SandboxPIDs = append(found.SandboxPIDs, p.pid)
			continue
		}
		c := &found.Containers[idx]
		c.PIDs = append(c.PIDs, p.pid)
		if l := leaders[idx]; l == nil || p.start < l.start || (p.start == l.start && p.pid < l.pid) {
			leaders[idx], p.cut = p, cut
		}
	}
	for i, l := range leaders {
		c := &found.Containers[i]
		if l == nil {
			c.Errors = append(c.Errors, "no running process in its cgroup")
			continue
		}
		c.Leader, c.Cgroup, c.CgroupV1 = l.pid, l.cut.path, l.cut.v1
		upper, err := Upper(procRoot, l.pid)
		if err != nil {
			c.Errors = append(c.Errors, err.Error())
		}
		c.Upper = upper
	}
	return found, nil
}

// statuses lists the containers of pod's status that have a runtime id.
func statuses(pod *corev1.Pod) []Container {
	cs := []Container{}
	add := func(kind string, ss []corev1.ContainerStatus) {
		for _, s := range ss {
			if s.ContainerID == "" {
				continue // not created yet
			}
			rt, id, ok := strings.Cut(s.ContainerID, "://")
			if !ok {
				rt, id = "", s.ContainerID
			}
			cs = append(cs, Container{Name: s.Name, Kind: kind, ID: id, Runtime: rt, PIDs: []int{}})
		}
	}
	add(KindContainer, pod.Status.ContainerStatuses)
	add(KindInit, pod.Status.InitContainerStatuses)
	add(KindEphemeral, pod.Status.EphemeralContainerStatuses)
	return cs
}

// proc is what the scan keeps of one of the pod's processes.
type proc struct {
	pid    int
	start  uint64
	cgroup []byte
	cut    cgroupCut
}

// scan lists the processes under procRoot whose cgroup matches, with their
// start times. A process that exits during the scan is left out.
func scan(ctx context.Context, procRoot string, match func([]byte) bool) ([]proc, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("listing processes in %s: %w", procRoot, err)
	}
	var procs []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("listing processes in %s: %w", procRoot, err)
		}
		dir := filepath.Join(procRoot, e.Name())
		cg, err := os.ReadFile(filepath.Join(dir, "cgroup"))
		if err != nil || !match(cg) {
			continue
		}
		start, err := startTicks(dir)
		if err != nil {
			continue
		}
		procs = append(procs, proc{pid: pid, start: start, cgroup: cg})
	}
	slices.SortFunc(procs, func(a, b proc) int { return a.pid - b.pid })
	return procs, nil
}

// startTicks reads the start time, field 22 of /proc/PID/stat. The
// command, in parentheses, may hold spaces and parentheses: the fields are
// counted after the last ")".
func startTicks(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return 0, err
	}
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, errors.New("stat: no command in parentheses")
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("stat: %d fields after the command, want at least 20", len(f))
	}
	return strconv.ParseUint(f[19], 10, 64)
}
