package playbooks_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"kir.dev/kir/playbooks"
)

var update = flag.Bool("update", false, "rewrite the golden files of invalid playbooks")

// TestLoad loads every testdata/playbooks file: valid-*.yaml must load;
// invalid-*.yaml must fail with exactly the problems in its .golden file,
// each naming file:line:col and what is wrong.
func TestLoad(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../testdata/playbooks/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no playbooks in testdata: %v", err)
	}
	reg := kirActions(t)
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// The name as an auditor would see it in the repository.
			pb, err := playbooks.Load("testdata/playbooks/"+name, data, reg)
			switch {
			case strings.HasPrefix(name, "valid-"):
				if err != nil {
					t.Fatalf("want it to load, got:\n%v", err)
				}
				if pb.Name == "" || len(pb.Steps) == 0 {
					t.Errorf("loaded playbook has no name or steps: %+v", pb)
				}
			case strings.HasPrefix(name, "invalid-"):
				var le *playbooks.LoadError
				if !errors.As(err, &le) {
					t.Fatalf("want a *LoadError, got %v", err)
				}
				got := err.Error() + "\n"
				golden := strings.TrimSuffix(path, ".yaml") + ".golden"
				if *update {
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./playbooks -run TestLoad -update)", err)
				}
				if diff := cmp.Diff(string(want), got); diff != "" {
					t.Errorf("problems differ from %s (-want +got):\n%s", golden, diff)
				}
				for _, p := range le.Problems {
					if !strings.HasPrefix(p.Pos.File, "testdata/playbooks/") {
						t.Errorf("problem %q does not name its file", p)
					}
				}
			default:
				t.Fatalf("%s: name testdata playbooks valid-* or invalid-*", name)
			}
		})
	}
}

// TestBuiltins loads the playbooks kir ships against kir's actions.
func TestBuiltins(t *testing.T) {
	lib, err := playbooks.NewLibrary(kirActions(t), playbooks.Sources{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"collect-pod", "contain-node", "contain-pod", "release-node", "release-pod", "rollback-secret", "rollback-x509-user", "rotate-kubeconfig", "rotate-secret", "rotate-serviceaccount", "rotate-x509-user"}
	if diff := cmp.Diff(want, lib.Names()); diff != "" {
		t.Errorf("built-in playbooks (-want +got):\n%s", diff)
	}
}
