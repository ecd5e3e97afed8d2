package catalog_test

import (
	"slices"
	"testing"

	"kir.dev/kir/cmd/kir/internal/catalog"
	"kir.dev/kir/rotate"
)

// A read-only action's start is journaled without waiting for the disk and
// its reads are reused by the step that acts: it must not be able to
// change the cluster. Its RBAC rules say what it can do.
func TestReadOnlyActionsOnlyRead(t *testing.T) {
	reg := catalog.Registry(rotate.Stores{})
	readOnly := 0
	for _, name := range reg.Names() {
		a, _ := reg.Get(name)
		spec := a.Spec()
		if !spec.ReadOnly {
			continue
		}
		readOnly++
		for _, r := range spec.Rules {
			for _, v := range r.Verbs {
				if !slices.Contains([]string{"get", "list", "watch"}, v) {
					t.Errorf("%s is read-only but needs %q on %v", name, v, r.Resources)
				}
			}
		}
	}
	if readOnly == 0 {
		t.Fatal("no read-only action: the collect actions are")
	}
	for _, name := range []string{"contain.isolate-pod", "contain.release-pod", "rotate.pod-credentials"} {
		if a, ok := reg.Get(name); !ok || a.Spec().ReadOnly {
			t.Errorf("%s: registered %v, read-only %v; want an acting action", name, ok, ok && a.Spec().ReadOnly)
		}
	}
}
