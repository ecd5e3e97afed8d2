package agent

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
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
	a.pruneCaptures(store)
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
