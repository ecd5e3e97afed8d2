//go:build linux

package container

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// freezePoll is how often Freeze and Thaw read the cgroup's state while
// they wait for it.
const freezePoll = 10 * time.Millisecond

// maxCgroupDepth bounds the search for a container's cgroup directory
// under the host's hierarchy (kubepods nest four or five deep).
const maxCgroupDepth = 12

// Freeze stops every process of c's cgroup, and its sub-cgroups, with the
// cgroup freezer, and waits until the kernel says all are frozen (or ctx
// ends): on cgroup v1, freezer.state FROZEN under the freezer hierarchy; on
// v2, cgroup.freeze 1 until cgroup.events says "frozen 1". hostRoot is
// where the host's file system is: HostPath(procRoot, "") for the agent
// (the host's /sys/fs/cgroup, not its own), "/" on the host. Freezing an
// already frozen cgroup succeeds. See the package documentation for what a
// frozen process can still do.
func Freeze(ctx context.Context, hostRoot string, c Container) error {
	return setFrozen(ctx, hostRoot, c, true)
}

// Thaw undoes [Freeze]; thawing a cgroup that is not frozen succeeds.
func Thaw(ctx context.Context, hostRoot string, c Container) error {
	return setFrozen(ctx, hostRoot, c, false)
}

func setFrozen(ctx context.Context, hostRoot string, c Container, frozen bool) error {
	verb := map[bool]string{true: "freezing", false: "thawing"}[frozen]
	dir, err := CgroupDir(hostRoot, c)
	if err != nil {
		return fmt.Errorf("%s container %s: %w", verb, c.Name, err)
	}
	file, value, done := "cgroup.freeze", "0", func(s string) bool { return hasLine(s, "frozen 0") }
	state := "cgroup.events"
	switch {
	case c.CgroupV1 && frozen:
		file, value, state = "freezer.state", "FROZEN", "freezer.state"
		done = func(s string) bool { return strings.TrimSpace(s) == "FROZEN" }
	case c.CgroupV1:
		file, value, state = "freezer.state", "THAWED", "freezer.state"
		done = func(s string) bool { return strings.TrimSpace(s) == "THAWED" }
	case frozen:
		value, done = "1", func(s string) bool { return hasLine(s, "frozen 1") }
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
		return fmt.Errorf("%s container %s: %w", verb, c.Name, err)
	}
	t := time.NewTicker(freezePoll)
	defer t.Stop()
	for {
		b, err := os.ReadFile(filepath.Join(dir, state))
		if err != nil {
			return fmt.Errorf("%s container %s: %w", verb, c.Name, err)
		}
		if done(string(b)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s container %s: waiting for %s (now %q): %w",
				verb, c.Name, filepath.Join(dir, state), strings.TrimSpace(string(b)), ctx.Err())
		case <-t.C:
		}
	}
}

func hasLine(s, line string) bool {
	for l := range strings.Lines(s) {
		if strings.TrimSuffix(l, "\n") == line {
			return true
		}
	}
	return false
}

// CgroupDir returns the directory of c's cgroup in the cgroup file system
// of the host whose root is hostRoot (see [Freeze]): the v1 freezer hierarchy
// at /sys/fs/cgroup/freezer, or the v2 one at /sys/fs/cgroup (or
// /sys/fs/cgroup/unified on a hybrid host). When c.Cgroup is relative to a
// private cgroup namespace of the agent (it starts with "/.."), the
// directory is found by what follows the ".." components, which includes
// the component naming the container: the one directory whose path ends so.
func CgroupDir(hostRoot string, c Container) (string, error) {
	if c.Cgroup == "" || !strings.HasPrefix(c.Cgroup, "/") {
		return "", fmt.Errorf("no cgroup path (%q)", c.Cgroup)
	}
	root, err := hierarchy(hostRoot, c.CgroupV1)
	if err != nil {
		return "", err
	}
	rel := strings.TrimPrefix(c.Cgroup, "/")
	if rel != ".." && !strings.HasPrefix(rel, "../") {
		if hasComponent(rel, "..") {
			return "", fmt.Errorf("cgroup path %q has a .. inside", c.Cgroup)
		}
		return filepath.Join(root, rel), nil
	}
	for rel == ".." || strings.HasPrefix(rel, "../") {
		rel = strings.TrimPrefix(strings.TrimPrefix(rel, ".."), "/")
	}
	if rel == "" || hasComponent(rel, "..") {
		return "", fmt.Errorf("cgroup path %q names no directory below the agent's cgroup namespace", c.Cgroup)
	}
	return findSuffix(root, rel)
}

// hasComponent says whether the slash-separated path p has the component comp.
func hasComponent(p, comp string) bool {
	for c := range strings.SplitSeq(p, "/") {
		if c == comp {
			return true
		}
	}
	return false
}

// hierarchy returns the root of the host's cgroup hierarchy: v1 freezer, or v2.
func hierarchy(hostRoot string, v1 bool) (string, error) {
	base := filepath.Join(hostRoot, "sys/fs/cgroup")
	want, cands := int64(unix.CGROUP2_SUPER_MAGIC), []string{base, base + "/unified"}
	if v1 {
		want, cands = unix.CGROUP_SUPER_MAGIC, []string{base + "/freezer"}
	}
	for _, d := range cands {
		var st unix.Statfs_t
		if err := unix.Statfs(d, &st); err == nil && int64(st.Type) == want {
			return d, nil
		}
	}
	if v1 {
		return "", fmt.Errorf("no cgroup v1 freezer hierarchy at %s", cands[0])
	}
	return "", fmt.Errorf("no cgroup v2 hierarchy at %s or %s", cands[0], cands[1])
}

// findSuffix finds the one directory under root whose path ends with
// suffix, at most maxCgroupDepth levels down.
func findSuffix(root, suffix string) (string, error) {
	var found []string
	want := strings.Count(suffix, "/") + 1
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil // a cgroup removed during the walk
		}
		rel, _ := filepath.Rel(root, p)
		depth := strings.Count(rel, "/") + 1
		if rel != "." && depth >= want && (rel == suffix || strings.HasSuffix(rel, "/"+suffix)) {
			found = append(found, p)
			return fs.SkipDir
		}
		if depth >= maxCgroupDepth {
			return fs.SkipDir
		}
		return nil
	})
	switch {
	case err != nil:
		return "", fmt.Errorf("searching %s for the cgroup %s: %w", root, suffix, err)
	case len(found) == 0:
		return "", fmt.Errorf("no cgroup …/%s under %s", suffix, root)
	case len(found) > 1:
		return "", fmt.Errorf("cgroup …/%s is ambiguous under %s: %s", suffix, root, strings.Join(found, ", "))
	}
	return found[0], nil
}
