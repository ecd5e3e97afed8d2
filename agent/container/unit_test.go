//go:build linux

package container

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

const (
	idA = "3f1c2b9e8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e"
	idB = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	cs := []Container{{Name: "a", ID: idA}, {Name: "b", ID: idB}, {Name: "short", ID: idA[:12]}}
	m, notes := newMatcher(cs)
	if len(notes) != 0 {
		t.Fatalf("notes: %v", notes)
	}
	pod := "/kubepods/besteffort/pod1234"
	slice := "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234.slice"
	for _, tc := range []struct {
		name, cgroup string
		want         int
		cut          cgroupCut
		note         bool
	}{
		{"cgroupfs v2", "0::" + pod + "/" + idA + "\n", 0, cgroupCut{path: pod + "/" + idA}, false},
		{"systemd containerd", "0::" + slice + "/cri-containerd-" + idB + ".scope\n", 1, cgroupCut{path: slice + "/cri-containerd-" + idB + ".scope"}, false},
		{"systemd crio", "0::" + slice + "/crio-" + idA + ".scope\n", 0, cgroupCut{path: slice + "/crio-" + idA + ".scope"}, false},
		{"docker scope", "0::" + slice + "/docker-" + idA + ".scope\n", 0, cgroupCut{path: slice + "/docker-" + idA + ".scope"}, false},
		{"crio cgroupfs", "0::" + pod + "/crio-" + idB + "\n", 1, cgroupCut{path: pod + "/crio-" + idB}, false},
		{"short id is a prefix: the long one", "0::" + pod + "/" + idA + "\n", 0, cgroupCut{path: pod + "/" + idA}, false},
		{"short id exact", "0::" + pod + "/" + idA[:12] + "\n", 2, cgroupCut{path: pod + "/" + idA[:12]}, false},
		{"id as a prefix of a component", "0::" + pod + "/" + idA + "0\n", -1, cgroupCut{}, false},
		{"id inside a component", "0::" + pod + "/x" + idA + "\n", -1, cgroupCut{}, false},
		{"conmon scope is not the container", "0::" + slice + "/crio-conmon-" + idA + ".scope\n", -1, cgroupCut{}, false},
		{"scope without .scope", "0::" + slice + "/cri-containerd-" + idA + "\n", -1, cgroupCut{}, false},
		{"sandbox", "0::" + pod + "/feedface\n", -1, cgroupCut{}, false},
		{"sub-cgroup named like another container", "0::" + pod + "/" + idA + "/" + idB + "\n", 0, cgroupCut{path: pod + "/" + idA}, false},
		{"private cgroupns", "0::/../../besteffort/pod1234/" + idA + "/init\n", 0, cgroupCut{path: "/../../besteffort/pod1234/" + idA}, false},
		{"v1 freezer preferred", "9:pids:" + pod + "/" + idA + "\n6:freezer:" + pod + "/" + idA + "\n0::/\n", 0, cgroupCut{path: pod + "/" + idA, v1: true}, false},
		{"v1 combined controllers", "3:cpu,freezer:" + pod + "/" + idA + "\n", 0, cgroupCut{path: pod + "/" + idA, v1: true}, false},
		{"v2 before other v1", "8:pids:" + pod + "/" + idB + "\n0::" + pod + "/" + idB + "\n", 1, cgroupCut{path: pod + "/" + idB}, false},
		{"hierarchies disagree", "6:freezer:" + pod + "/" + idA + "\n0::" + pod + "/" + idB + "\n", 0, cgroupCut{path: pod + "/" + idA, v1: true}, true},
		{"garbage", "no colons here\n", -1, cgroupCut{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, cut, note := m.classify([]byte(tc.cgroup))
			if got != tc.want || cut != tc.cut {
				t.Errorf("classify(%q) = %d %+v, want %d %+v", tc.cgroup, got, cut, tc.want, tc.cut)
			}
			if (note != "") != tc.note {
				t.Errorf("note %q, want one: %v", note, tc.note)
			}
		})
	}
}

func TestMatcherRejectsIDs(t *testing.T) {
	t.Parallel()
	_, notes := newMatcher([]Container{{Name: "a", ID: "../x"}, {Name: "b", ID: ".."}, {Name: "c", ID: idA}, {Name: "d", ID: idA}})
	if len(notes) != 3 {
		t.Errorf("notes = %q", notes)
	}
}

func TestStatuses(t *testing.T) {
	t.Parallel()
	pod := &corev1.Pod{Status: corev1.PodStatus{
		ContainerStatuses: []corev1.ContainerStatus{
			{Name: "main", ContainerID: "containerd://" + idA},
			{Name: "waiting"},
		},
		InitContainerStatuses:      []corev1.ContainerStatus{{Name: "init", ContainerID: "cri-o://" + idB}},
		EphemeralContainerStatuses: []corev1.ContainerStatus{{Name: "debugger", ContainerID: "docker://abc"}},
	}}
	want := []Container{
		{Name: "main", Kind: KindContainer, ID: idA, Runtime: "containerd", PIDs: []int{}},
		{Name: "init", Kind: KindInit, ID: idB, Runtime: "cri-o", PIDs: []int{}},
		{Name: "debugger", Kind: KindEphemeral, ID: "abc", Runtime: "docker", PIDs: []int{}},
	}
	if d := cmp.Diff(want, statuses(pod)); d != "" {
		t.Errorf("statuses (-want +got):\n%s", d)
	}
}

// mi builds a mountinfo line.
func mi(point, fstype, super string) string {
	return "100 90 0:55 / " + point + " rw,relatime - " + fstype + " overlay " + super + "\n"
}

func TestParseUpper(t *testing.T) {
	t.Parallel()
	std := "rw,lowerdir=/l1:/l2,upperdir=/var/lib/containerd/snapshots/12/fs,workdir=/var/lib/containerd/snapshots/12/work"
	for _, tc := range []struct {
		name, mountinfo, want, err string
	}{
		{"containerd", mi("/", "overlay", std) + mi("/proc", "proc", "rw"), "/var/lib/containerd/snapshots/12/fs", ""},
		{"optional fields", "100 90 0:55 / / rw,relatime shared:1 master:2 - overlay overlay " + std + "\n", "/var/lib/containerd/snapshots/12/fs", ""},
		{"space and tab escaped", mi("/", "overlay", `rw,upperdir=/a\040b/c\011d,workdir=/w`), "/a b/c\td", ""},
		{"comma escaped by seq_show_option, then by overlayfs", mi("/", "overlay", `rw,lowerdir=/l,upperdir=/a\134\054b,workdir=/w`), "/a,b", ""},
		{"backslash in the path", mi("/", "overlay", `rw,upperdir=/a\134\134b,workdir=/w`), `/a\b`, ""},
		{"newline", mi("/", "overlay", `rw,upperdir=/a\012b`), "/a\nb", ""},
		{"mount point escaped is not /", mi(`/\040`, "overlay", std), "", "no mount on /"},
		{"first / wins over a stacked one", mi("/", "overlay", std) + mi("/", "overlay", "rw,upperdir=/etc"), "/var/lib/containerd/snapshots/12/fs", "stacked on / (overlay)"},
		{"not overlay", mi("/", "ext4", "rw"), "", `root file system is "ext4", not overlay`},
		{"no upper", mi("/", "overlay", "ro,lowerdir=/a:/b"), "", "no upperdir"},
		{"relative upper", mi("/", "overlay", "rw,upperdir=snap/fs"), "", "not an absolute, clean path"},
		{"dotdot upper", mi("/", "overlay", "rw,upperdir=/a/../etc"), "", "not an absolute, clean path"},
		{"malformed", "1 2 3\n", "", "malformed mountinfo line"},
		{"empty", "", "", "no mount on /"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseUpper(tc.mountinfo)
			if got != tc.want {
				t.Errorf("upper = %q, want %q", got, tc.want)
			}
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error = %v, want one containing %q", err, tc.err)
			}
		})
	}
}

func TestHostPath(t *testing.T) {
	t.Parallel()
	if got, want := HostPath("/host/proc", "/var/lib/x y"), "/host/proc/1/root/var/lib/x y"; got != want {
		t.Errorf("HostPath = %q, want %q", got, want)
	}
}

func TestUnescape(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`plain`: "plain", `\040`: " ", `a\04`: `a\04`, `\0`: `\0`, `\089`: `\089`, `\134\134`: `\\`,
	} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{`a\,b`: "a,b", `a\\b`: `a\b`, `a\`: "a", `\:`: ":"} {
		if got := ovlUnescape(in); got != want {
			t.Errorf("ovlUnescape(%q) = %q, want %q", in, got, want)
		}
	}
}
