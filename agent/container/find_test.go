//go:build linux

package container

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestFind builds a pod as a runtime would on this node, with a container
// per cgroup driver, each rooted on its own overlay, and checks what Find
// reports of it.
func TestFind(t *testing.T) {
	needRoot(t)
	uid := randomUID(t)
	top := "kir-container-test-" + randomHex(t, 4)
	idMain, idDebug, idHost, idSandbox := randomHex(t, 32), randomHex(t, 32), randomHex(t, 32), randomHex(t, 32)
	podfs := top + "/kubepods/besteffort/pod" + uid
	slice := top + ".slice/kubepods-besteffort-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"
	cgMain := podfs + "/" + idMain                                            // cgroupfs driver
	cgDebug := slice + "/cri-containerd-" + idDebug + ".scope"                // systemd driver
	cgHost := slice + "/crio-" + idHost + ".scope"                            // systemd driver, CRI-O
	cgSandbox := podfs + "/" + idSandbox                                      // the pause container
	cgDecoy := podfs + "/" + idMain + "0"                                     // idMain is a prefix of it
	cgOther := top + "/kubepods/besteffort/pod" + randomUID(t) + "/" + idMain // another pod

	// The containers' upper directories: one with a space and a comma
	// (escaped by mountinfo and by overlayfs), one plain.
	rootMain, upperMain := overlayRoot(t, "up per,x")
	rootDebug, upperDebug := overlayRoot(t, "upper")

	enter := map[string]func(int){}
	for _, cg := range []string{cgMain, cgDebug, cgHost, cgSandbox, cgDecoy, cgOther} {
		enter[cg] = cgroup(t, cg)
	}
	mainPID := start(t, rootMain, "echo dropped > /written; /bin/busybox sleep 1000 & wait", enter[cgMain])
	debugPID := start(t, rootDebug, "exec /bin/busybox sleep 1000", enter[cgDebug])
	hostPID := start(t, "", "exec /bin/busybox sleep 1000", enter[cgHost])
	sandboxPID := start(t, "", "exec /bin/busybox sleep 1000", enter[cgSandbox])
	decoyPID := start(t, "", "exec /bin/busybox sleep 1000", enter[cgDecoy])
	otherPID := start(t, "", "exec /bin/busybox sleep 1000", enter[cgOther])
	mainPIDs := waitProcs(t, cgMain, 2)
	waitFile(t, filepath.Join(upperMain, "written"))

	pod := &corev1.Pod{}
	pod.Name, pod.Namespace, pod.UID = "web", "shop", types.UID(uid)
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{
		{Name: "main", ContainerID: "containerd://" + idMain},
		{Name: "short", ContainerID: "containerd://" + idMain[:12]}, // a prefix of main's
		{Name: "host", ContainerID: "cri-o://" + idHost},
		{Name: "starting"},
	}
	pod.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "init", ContainerID: "containerd://" + randomHex(t, 32)}}
	pod.Status.EphemeralContainerStatuses = []corev1.ContainerStatus{{Name: "debugger", ContainerID: "containerd://" + idDebug}}

	got, err := Find(context.Background(), "/proc", pod)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Container{}
	for _, c := range got.Containers {
		byName[c.Name] = c
	}
	slices.Sort(mainPIDs)
	check := func(name string, want Container) {
		t.Helper()
		c := byName[name]
		// The error of the host container names its root file system's
		// type, whatever this machine's is.
		c.Errors = slices.DeleteFunc(slices.Clone(c.Errors), func(e string) bool {
			return name == "host" && strings.Contains(e, "not overlay: no upper directory")
		})
		if len(c.Errors) == 0 {
			c.Errors = nil
		}
		if d := cmp.Diff(want, c); d != "" {
			t.Errorf("container %s (-want +got):\n%s", name, d)
		}
	}
	check("main", Container{Name: "main", Kind: KindContainer, ID: idMain, Runtime: "containerd", PIDs: mainPIDs,
		Leader: mainPID, Cgroup: "/" + cgMain, CgroupV1: true, Upper: upperMain})
	check("short", Container{Name: "short", Kind: KindContainer, ID: idMain[:12], Runtime: "containerd", PIDs: []int{},
		Errors: []string{"no running process in its cgroup"}})
	check("host", Container{Name: "host", Kind: KindContainer, ID: idHost, Runtime: "cri-o", PIDs: []int{hostPID},
		Leader: hostPID, Cgroup: "/" + cgHost, CgroupV1: true})
	check("debugger", Container{Name: "debugger", Kind: KindEphemeral, ID: idDebug, Runtime: "containerd", PIDs: []int{debugPID},
		Leader: debugPID, Cgroup: "/" + cgDebug, CgroupV1: true, Upper: upperDebug})
	if c := byName["host"]; len(c.Errors) != 1 || !strings.Contains(c.Errors[0], "not overlay") {
		t.Errorf("host container's errors = %#v, want one saying its root is not overlay", c.Errors)
	}
	if c := byName["init"]; c.Kind != KindInit || len(c.PIDs) != 0 {
		t.Errorf("init container = %+v, want one without processes", c)
	}
	if len(got.Containers) != 5 {
		t.Errorf("%d containers, want 5 (the one without an id left out)", len(got.Containers))
	}
	sandbox := []int{sandboxPID, decoyPID}
	slices.Sort(sandbox)
	if d := cmp.Diff(sandbox, got.SandboxPIDs); d != "" {
		t.Errorf("sandbox pids (-want +got):\n%s", d)
	}
	if name, ok := got.ContainerOf(otherPID); ok {
		t.Errorf("another pod's process %d found as %q", otherPID, name)
	}
	if name, ok := got.ContainerOf(mainPIDs[len(mainPIDs)-1]); !ok || name != "main" {
		t.Errorf("ContainerOf(%d) = %q %v, want main", mainPIDs[1], name, ok)
	}
	if len(got.Notes) != 0 {
		t.Errorf("notes: %q", got.Notes)
	}
	// What the container wrote is in the upper directory Find reports.
	if b, err := os.ReadFile(filepath.Join(byName["main"].Upper, "written")); err != nil || string(b) != "dropped\n" {
		t.Errorf("upper/written = %q, %v", b, err)
	}
}

func TestFindNoUID(t *testing.T) {
	t.Parallel()
	if _, err := Find(context.Background(), "/proc", &corev1.Pod{}); err == nil || !strings.Contains(err.Error(), "no UID") {
		t.Errorf("Find of a pod without a UID: %v", err)
	}
}

// TestFindStackedRoot: a container that mounts over its own root (it can,
// with CAP_SYS_ADMIN) does not move its root, nor Find's upper directory:
// what it writes still goes to the overlay.
func TestFindStackedRoot(t *testing.T) {
	needRoot(t)
	uid, id := randomUID(t), randomHex(t, 32)
	cg := "kir-container-test-" + randomHex(t, 4) + "/kubepods/pod" + uid + "/" + id
	root, upper := overlayRoot(t, "upper")
	start(t, root, "/bin/busybox mount -t tmpfs none / && echo x > /after && exec /bin/busybox sleep 1000", cgroup(t, cg))
	waitFile(t, filepath.Join(upper, "after"))

	pod := &corev1.Pod{}
	pod.UID = types.UID(uid)
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", ContainerID: "containerd://" + id}}
	got, err := Find(context.Background(), "/proc", pod)
	if err != nil {
		t.Fatal(err)
	}
	c := got.Containers[0]
	if c.Upper != upper {
		t.Errorf("upper = %q, want %q", c.Upper, upper)
	}
	if len(c.Errors) != 1 || !strings.Contains(c.Errors[0], "mounts stacked on / (tmpfs) left aside") {
		t.Errorf("errors = %q, want one naming the tmpfs stacked on /", c.Errors)
	}
}
