//go:build linux

package container

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestFreeze freezes a container that counts into a file of its writable
// layer, on each cgroup version this machine has, and checks the count
// stops while frozen and goes on after Thaw.
func TestFreeze(t *testing.T) {
	needRoot(t)
	uid, id := randomUID(t), randomHex(t, 32)
	top := "kir-container-test-" + randomHex(t, 4)
	cg := top + ".slice/kubepods-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/cri-containerd-" + id + ".scope"
	root, upper := overlayRoot(t, "upper")
	enter := cgroup(t, cg)
	// The counter forks a child each round, so new processes are born
	// while the cgroup freezes.
	start(t, root, "i=0; while :; do i=$((i+1)); echo $i > /c; /bin/busybox usleep 10000; done", enter)

	pod := &corev1.Pod{}
	pod.UID = types.UID(uid)
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", ContainerID: "containerd://" + id}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	found, err := Find(ctx, "/proc", pod)
	if err != nil {
		t.Fatal(err)
	}
	c := found.Containers[0]
	counter := filepath.Join(upper, "c")
	v1, v2 := hierarchies(t)
	type variant struct {
		name string
		c    Container
	}
	var variants []variant
	if len(v1) > 0 && strings.HasSuffix(v1[0], "/freezer") {
		if !c.CgroupV1 {
			t.Fatalf("cgroup of %+v is not the v1 freezer's, though there is one", c)
		}
		variants = append(variants, variant{"v1 freezer", c})
	}
	if v2 != "" {
		c2 := c
		c2.CgroupV1 = false
		variants = append(variants, variant{"v2", c2})
		// The agent in a private cgroup namespace sees the path from
		// its own cgroup, up and down.
		c3 := c2
		c3.Cgroup = "/../.." + strings.TrimPrefix(c.Cgroup, "/"+top+".slice")
		variants = append(variants, variant{"v2 from a private cgroup namespace", c3})
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			before := waitCount(t, counter, 0)
			if err := Freeze(ctx, "/", v.c); err != nil {
				t.Fatal(err)
			}
			if err := Freeze(ctx, "/", v.c); err != nil {
				t.Fatalf("freezing again: %v", err)
			}
			frozen := readCount(t, counter)
			if frozen < before {
				t.Fatalf("count went back from %d to %d", before, frozen)
			}
			time.Sleep(300 * time.Millisecond) // 30 rounds, were it running
			if now := readCount(t, counter); now != frozen {
				t.Fatalf("count went from %d to %d while frozen", frozen, now)
			}
			if err := Thaw(ctx, "/", v.c); err != nil {
				t.Fatal(err)
			}
			if err := Thaw(ctx, "/", v.c); err != nil {
				t.Fatalf("thawing again: %v", err)
			}
			waitCount(t, counter, frozen+3)
		})
	}
}

// readCount reads the counter; -1 while it is being rewritten (empty).
func readCount(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return -1
		}
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}

// waitCount waits until the counter reaches at least n, and returns it.
func waitCount(t *testing.T, path string, n int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c := readCount(t, path); c >= n {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter %s never reached %d (now %d)", path, n, readCount(t, path))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCgroupDirErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []Container{
		{Name: "none"},
		{Name: "relative", Cgroup: "kubepods/x"},
		{Name: "dotdot inside", Cgroup: "/kubepods/../x"},
		{Name: "only up", Cgroup: "/../.."},
	} {
		if d, err := CgroupDir("/", c); err == nil {
			t.Errorf("CgroupDir(%q) = %s, want an error", c.Cgroup, d)
		}
		if err := Freeze(context.Background(), "/", c); err == nil || !strings.Contains(err.Error(), "freezing container "+c.Name) {
			t.Errorf("Freeze(%q): %v", c.Cgroup, err)
		}
	}
}
