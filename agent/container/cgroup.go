//go:build linux

package container

import (
	"fmt"
	"slices"
	"strings"
)

// scopePrefixes are the runtimes' names of a container's systemd scope,
// <prefix>-<id>.scope, as the systemd cgroup driver makes them.
var scopePrefixes = []string{"cri-containerd", "crio", "docker", "libpod"}

// matcher tells, from a process's /proc/PID/cgroup, which of the pod's
// containers holds it. A container's cgroup is the path component named
// exactly by its id: "<id>" (cgroupfs driver, containerd and docker),
// "crio-<id>" (CRI-O, cgroupfs) or "<runtime>-<id>.scope" (systemd driver).
// A whole component, never a substring: an id that is a prefix of another
// path component names nothing.
type matcher struct {
	byName map[string]int
}

func newMatcher(cs []Container) (matcher, []string) {
	m := matcher{byName: map[string]int{}}
	var notes []string
	for i, c := range cs {
		if c.ID == "" || c.ID == "." || c.ID == ".." || strings.ContainsAny(c.ID, "/\x00\n") {
			notes = append(notes, fmt.Sprintf("container %s: id %q cannot name a cgroup", c.Name, c.ID))
			continue
		}
		if j, dup := m.byName[c.ID]; dup {
			notes = append(notes, fmt.Sprintf("containers %s and %s have the same id %q: %s taken", cs[j].Name, c.Name, c.ID, cs[j].Name))
			continue
		}
		m.byName[c.ID], m.byName["crio-"+c.ID] = i, i
		for _, p := range scopePrefixes {
			m.byName[p+"-"+c.ID+".scope"] = i
		}
	}
	return m, notes
}

// cgroupCut is a container's cgroup: the path up to and including the
// component naming it, and whether it is on a v1 hierarchy.
type cgroupCut struct {
	path string
	v1   bool
}

// cgroupLine is one line of /proc/PID/cgroup: "ID:controllers:path".
type cgroupLine struct {
	controllers string
	path        string
}

func (l cgroupLine) v2() bool { return l.controllers == "" }

// parseCgroup reads /proc/PID/cgroup's lines, in order of preference: the
// v1 freezer hierarchy (what Freeze acts on, when there is one), the v2
// hierarchy, then the other v1 hierarchies as listed.
func parseCgroup(b []byte) []cgroupLine {
	var ls []cgroupLine
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSuffix(line, "\n")
		_, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		ctrl, path, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		ls = append(ls, cgroupLine{controllers: ctrl, path: path})
	}
	rank := func(l cgroupLine) int {
		switch {
		case slices.Contains(strings.Split(l.controllers, ","), "freezer"):
			return 0
		case l.v2():
			return 1
		}
		return 2
	}
	slices.SortStableFunc(ls, func(a, b cgroupLine) int { return rank(a) - rank(b) })
	return ls
}

// classify returns the index of the container holding the process whose
// /proc/PID/cgroup is b, or -1, and the container's cgroup. In each line
// the outermost component naming a container wins: a sub-cgroup the
// container made (named, say, like another container of the pod) is inside
// it. The line of most preference naming a container decides; a note says
// when another line names a different one (a process moved on one
// hierarchy only, which needs privileges).
func (m matcher) classify(b []byte) (int, cgroupCut, string) {
	idx, cut := -1, cgroupCut{}
	var others []int
	for _, l := range parseCgroup(b) {
		i, path := m.lineMatch(l.path)
		switch {
		case i < 0:
		case idx < 0:
			idx, cut = i, cgroupCut{path: path, v1: !l.v2()}
		case i != idx && !slices.Contains(others, i):
			others = append(others, i)
		}
	}
	note := ""
	if len(others) > 0 {
		note = fmt.Sprintf("cgroup lines name different containers (#%d and %v): taken as #%d", idx, others, idx)
	}
	return idx, cut, note
}

// lineMatch returns the container named by a component of path and the path
// up to that component.
func (m matcher) lineMatch(path string) (int, string) {
	for off := 0; off <= len(path); {
		end := len(path)
		if j := strings.IndexByte(path[off:], '/'); j >= 0 {
			end = off + j
		}
		if i, ok := m.byName[path[off:end]]; ok {
			return i, path[:end]
		}
		off = end + 1
	}
	return -1, ""
}
