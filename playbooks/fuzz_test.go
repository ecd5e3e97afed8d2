package playbooks_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"kir.dev/kir/playbooks"
)

// FuzzLoad feeds the loader arbitrary bytes, seeded with every playbook in
// testdata and the built-ins: it must never panic, and must either load a
// playbook or explain why with positioned problems.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/playbooks/*.yaml")
	builtins, _ := filepath.Glob("builtin/*.yaml")
	for _, path := range append(seeds, builtins...) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	reg := kirActions(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		pb, err := playbooks.Load("fuzz.yaml", data, reg)
		if err != nil {
			var le *playbooks.LoadError
			if !errors.As(err, &le) || len(le.Problems) == 0 {
				t.Fatalf("want a *LoadError with problems, got %T %v", err, err)
			}
			return
		}
		if pb.Name == "" || len(pb.Steps) == 0 {
			t.Fatalf("loaded a playbook without a name or steps")
		}
		if _, err := playbooks.Bind(pb, nil); err != nil {
			var pe *playbooks.ParamError
			if !errors.As(err, &pe) {
				t.Fatalf("Bind: want a *ParamError, got %T %v", err, err)
			}
		}
	})
}
