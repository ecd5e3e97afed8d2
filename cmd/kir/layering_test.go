package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/importer"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// listed is what `go list -json` says of a package, as far as these tests
// read it.
type listed struct {
	ImportPath string
	Name       string
	Export     string
	Imports    []string
	Standard   bool
	Module     *struct{ Path string }
}

// modulePackages lists every package of kir's module and their
// dependencies, with export data, as the compiler built them.
func modulePackages(t *testing.T) (mod string, pkgs map[string]listed) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	mod = strings.TrimSpace(string(out))
	cmd := exec.Command("go", "list", "-deps", "-export", "-json=ImportPath,Name,Export,Imports,Standard,Module", mod+"/...")
	cmd.Stderr = os.Stderr
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps -export: %v", err)
	}
	pkgs = map[string]listed{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs[p.ImportPath] = p
	}
	return mod, pkgs
}

// TestOnlyMainImportsTheCommandLine: the command line's packages live under
// cmd/kir/internal, and only cmd/kir's own packages import them (Go's
// internal rule enforces that; this test keeps the rule from being
// sidestepped by moving them back).
func TestOnlyMainImportsTheCommandLine(t *testing.T) {
	mod, pkgs := modulePackages(t)
	cmdInternal := mod + "/cmd/kir/internal/"
	for _, name := range []string{"cli", "catalog", "refdocs"} {
		if _, ok := pkgs[cmdInternal+name]; !ok {
			t.Errorf("package %s%s is missing: the command line's packages live under cmd/kir/internal", cmdInternal, name)
		}
	}
	for path, p := range pkgs {
		if p.Module == nil || p.Module.Path != mod || strings.HasPrefix(path, mod+"/cmd/kir") {
			continue
		}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, cmdInternal) {
				t.Errorf("%s imports %s: only cmd/kir may", path, imp)
			}
		}
	}
}

// TestPublicAPIsExposeNoInternalType: a public package of kir (one outside
// any internal/ folder and outside cmd/) must be usable from another
// module, so no exported name of it may mention a type from an internal
// package: not in a function's signature, an exported field, a method or a
// variable.
func TestPublicAPIsExposeNoInternalType(t *testing.T) {
	mod, pkgs := modulePackages(t)
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		p, ok := pkgs[path]
		if !ok || p.Export == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(p.Export)
	})
	var public []string
	for path, p := range pkgs {
		if p.Module == nil || p.Module.Path != mod || p.Name == "main" || isInternal(path) || strings.HasPrefix(path, mod+"/cmd/") {
			continue
		}
		public = append(public, path)
	}
	slices.Sort(public)
	if len(public) == 0 {
		t.Fatal("no public package found")
	}
	for _, path := range public {
		pkg, err := imp.Import(path)
		if err != nil {
			t.Fatalf("importing %s: %v", path, err)
		}
		scope := pkg.Scope()
		for _, name := range scope.Names() {
			obj := scope.Lookup(name)
			if !obj.Exported() {
				continue
			}
			w := &apiWalker{seen: map[types.Type]bool{}}
			w.walk(obj.Type(), path+"."+name)
			if tn, ok := obj.(*types.TypeName); ok {
				if named, ok := tn.Type().(*types.Named); ok {
					for m := range named.Methods() {
						if m.Exported() {
							w.walk(m.Type(), path+"."+name+"."+m.Name())
						}
					}
				}
			}
			for _, f := range w.found {
				t.Errorf("%s", f)
			}
		}
	}
}

func isInternal(path string) bool {
	return strings.Contains(path, "/internal/") || strings.HasSuffix(path, "/internal")
}

// apiWalker finds internal types reachable through exported names.
type apiWalker struct {
	seen  map[types.Type]bool
	found []string
}

func (w *apiWalker) walk(t types.Type, where string) {
	if t == nil || w.seen[t] {
		return
	}
	w.seen[t] = true
	switch t := t.(type) {
	case *types.Named:
		if obj := t.Obj(); obj.Pkg() != nil && isInternal(obj.Pkg().Path()) {
			w.found = append(w.found, fmt.Sprintf("%s exposes %s.%s", where, obj.Pkg().Path(), obj.Name()))
			return
		}
		for a := range t.TypeArgs().Types() {
			w.walk(a, where)
		}
		if t.Obj().Pkg() == nil || !strings.HasPrefix(t.Obj().Pkg().Path(), "kir.dev/") {
			return // another module's type: its API is its own
		}
		w.walk(t.Underlying(), where)
		for m := range t.Methods() {
			if m.Exported() {
				w.walk(m.Type(), where+"."+m.Name())
			}
		}
	case *types.Pointer:
		w.walk(t.Elem(), where)
	case *types.Slice:
		w.walk(t.Elem(), where)
	case *types.Array:
		w.walk(t.Elem(), where)
	case *types.Map:
		w.walk(t.Key(), where)
		w.walk(t.Elem(), where)
	case *types.Chan:
		w.walk(t.Elem(), where)
	case *types.Signature:
		for v := range t.Params().Variables() {
			w.walk(v.Type(), where)
		}
		for v := range t.Results().Variables() {
			w.walk(v.Type(), where)
		}
	case *types.Struct:
		for f := range t.Fields() {
			if f.Exported() {
				w.walk(f.Type(), where+"."+f.Name())
			}
		}
	case *types.Interface:
		for m := range t.Methods() {
			if m.Exported() {
				w.walk(m.Type(), where+"."+m.Name())
			}
		}
	}
}

// TestReadmeLayoutMatchesTheTree: README's layout table names every folder
// that holds one idea — each top folder, and each package directly under
// an internal/ — and names nothing that is gone.
func TestReadmeLayoutMatchesTheTree(t *testing.T) {
	root := moduleRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "\n## Layout\n")
	if !ok {
		t.Fatal("README.md has no ## Layout section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	listed := map[string]bool{}
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimPrefix(line, "| `"), "`")
		name = strings.TrimSuffix(name, "/")
		listed[name] = true
		if _, err := os.Stat(filepath.Join(root, name)); err != nil {
			t.Errorf("README's layout lists %s, which is not in the tree", name)
		}
	}
	var want []string
	tops, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tops {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && e.Name() != "bin" && e.Name() != "internal" && e.Name() != "cmd" {
			want = append(want, e.Name())
		}
	}
	for _, parent := range []string{"internal", "cmd/kir/internal"} {
		subs, err := os.ReadDir(filepath.Join(root, parent))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range subs {
			if e.IsDir() {
				want = append(want, parent+"/"+e.Name())
			}
		}
	}
	want = append(want, "cmd/kir")
	for _, name := range want {
		if !listed[name] {
			t.Errorf("README's layout table does not list %s", name)
		}
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}
