package playbooks_test

import (
	"slices"
	"testing"

	"kir.dev/kir/action"
	"kir.dev/kir/collect"
	"kir.dev/kir/contain"
	"kir.dev/kir/rotate"
)

// kirActions are the actions the built-in playbooks name: every package's
// list, as kir's catalog (cmd/kir/internal/catalog) joins them.
func kirActions(t testing.TB) action.Registry {
	t.Helper()
	r, err := action.NewRegistry(slices.Concat(contain.Actions(), collect.Actions(), rotate.Actions(rotate.Stores{}))...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
