package refdocs_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/cmd/kir/internal/catalog"
	"kir.dev/kir/cmd/kir/internal/refdocs"
	"kir.dev/kir/playbooks"
)

var update = flag.Bool("update", false, "rewrite docs/actions.md and docs/playbooks.md")

// TestGenerated fails when the reference docs drift from the code; `make
// docs` rewrites them.
func TestGenerated(t *testing.T) {
	reg := catalog.Registry()
	lib, err := playbooks.NewLibrary(reg, playbooks.Sources{})
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"actions.md":   refdocs.Actions(reg),
		"playbooks.md": refdocs.Playbooks(lib),
	} {
		path := filepath.Join("..", "..", "..", "..", "docs", file)
		if *update {
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run make docs)", err)
		}
		if diff := cmp.Diff(want, string(got)); diff != "" {
			t.Errorf("docs/%s is out of date; run make docs (-generated +file):\n%s", file, diff)
		}
	}
}
