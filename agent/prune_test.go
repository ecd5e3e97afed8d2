package agent

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"kir.dev/kir/agent/container"
)

// TestPruneCaptures: at start, the agent deletes the captures of pods no
// longer quarantined on its node (released while it was down), and keeps
// the others'.
func TestPruneCaptures(t *testing.T) {
	dir := t.TempDir()
	for _, q := range []string{"kept-uid", "released-uid"} {
		if err := os.MkdirAll(filepath.Join(dir, q, "c1"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	store := cache.NewStore(cache.MetaNamespaceKeyFunc)
	if err := store.Add(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "kept-uid"}}); err != nil {
		t.Fatal(err)
	}
	a := &Agent{cfg: Config{CaptureDir: dir}}
	a.cfg.defaults()
	a.pruneCaptures(t.Context(), store)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"kept-uid"}) {
		t.Errorf("captures left %v, want only the quarantined pod's", names)
	}
}

// TestPruneThawsWhatItFroze: a pod frozen with --freeze and released while
// no agent ran is thawed by the next agent to start, from what the
// freezing agent recorded (the pod is no longer quarantined, so the new
// agent never sees it otherwise).
func TestPruneThawsWhatItFroze(t *testing.T) {
	const freezer = "/sys/fs/cgroup/freezer"
	if _, err := os.Stat(filepath.Join(freezer, "cgroup.procs")); err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs root and a cgroup v1 freezer hierarchy (%v)", err)
		}
		t.Skip("needs root and a cgroup v1 freezer hierarchy")
	}
	rel := "/kir-agent-prune-test-" + strconv.Itoa(os.Getpid())
	dir := filepath.Join(freezer, rel)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0o644)
		_ = sleep.Process.Kill()
		_ = sleep.Wait()
		_ = os.Remove(dir)
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(sleep.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	c := container.Container{Name: "main", Cgroup: rel, CgroupV1: true}
	if err := container.Freeze(t.Context(), "/", c); err != nil {
		t.Fatal(err)
	}

	a := &Agent{cfg: Config{CaptureDir: t.TempDir(), HostRoot: "/"}}
	a.cfg.defaults()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "released-uid"}}
	if err := a.recordFrozen(pod, []container.Container{c}); err != nil {
		t.Fatal(err)
	}
	a.pruneCaptures(t.Context(), cache.NewStore(cache.MetaNamespaceKeyFunc))
	state, err := os.ReadFile(filepath.Join(dir, "freezer.state"))
	if err != nil || strings.TrimSpace(string(state)) != "THAWED" {
		t.Errorf("freezer.state %q (%v) after the prune, want THAWED", state, err)
	}
	if _, err := os.Stat(filepath.Join(a.cfg.CaptureDir, "released-uid")); !os.IsNotExist(err) {
		t.Errorf("the released pod's capture directory stays: %v", err)
	}
}
