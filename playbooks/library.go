package playbooks

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"kir.dev/kir/action"
)

//go:embed builtin/*.yaml
var builtinFS embed.FS

// BuiltinPrefix starts the Source of a playbook shipped inside kir.
const BuiltinPrefix = "builtin:"

// Library is the set of playbooks a kir command can run: the built-in ones,
// overridden by the user's (from a directory, then from files), by name.
type Library struct {
	byName map[string]*Entry
}

// Entry is a playbook in a library, with what it overrides.
type Entry struct {
	*Playbook
	// Overrides lists the sources of playbooks of the same name this one
	// replaced, e.g. the built-in one.
	Overrides []string
}

// Sources says where a library's user playbooks come from.
type Sources struct {
	// Dirs are directories whose *.yaml and *.yml files are playbooks.
	Dirs []string
	// Files are playbook files; they win over Dirs.
	Files []string
}

// NewLibrary loads the built-in playbooks, then the user's. Every problem in
// every file is reported at once, as a *LoadError.
func NewLibrary(reg action.Registry, src Sources) (*Library, error) {
	l := &Library{byName: map[string]*Entry{}}
	var list []Problem
	add := func(pb *Playbook, err error) {
		var le *LoadError
		switch {
		case errors.As(err, &le):
			list = append(list, le.Problems...)
		case err != nil:
			list = append(list, Problem{Msg: err.Error()})
		default:
			l.put(pb)
		}
	}
	builtins, err := fs.Glob(builtinFS, "builtin/*.yaml")
	if err != nil {
		return nil, err
	}
	for _, name := range builtins {
		data, err := builtinFS.ReadFile(name)
		if err != nil {
			return nil, err
		}
		add(Load(BuiltinPrefix+filepath.Base(name), data, reg))
	}
	for _, dir := range src.Dirs {
		files, err := playbookFiles(dir)
		if err != nil {
			list = append(list, Problem{Pos: Pos{File: dir}, Msg: err.Error()})
			continue
		}
		seen := map[string]string{}
		for _, f := range files {
			pb, err := LoadFile(f, reg)
			if err == nil {
				if other, dup := seen[pb.Name]; dup {
					err = fmt.Errorf("%s: playbook %q is also defined in %s", f, pb.Name, other)
				}
				seen[pb.Name] = f
			}
			add(pb, err)
		}
	}
	for _, f := range src.Files {
		add(LoadFile(f, reg))
	}
	if len(list) > 0 {
		return nil, newLoadError(list)
	}
	return l, nil
}

func (l *Library) put(pb *Playbook) {
	e := &Entry{Playbook: pb}
	if old, ok := l.byName[pb.Name]; ok {
		e.Overrides = append(append([]string{}, old.Overrides...), old.Source)
	}
	l.byName[pb.Name] = e
}

// LoadFile loads one playbook file.
func LoadFile(path string, reg action.Registry) (*Playbook, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading playbook: %w", err)
	}
	if fi.Size() > maxFileSize {
		return nil, fmt.Errorf("reading playbook %s: %d bytes; a playbook is at most %d", path, fi.Size(), maxFileSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading playbook: %w", err)
	}
	return Load(path, data, reg)
}

func playbookFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading playbooks directory: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if ext := filepath.Ext(e.Name()); ext == ".yaml" || ext == ".yml" {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// Get returns the named playbook.
func (l *Library) Get(name string) (*Entry, bool) {
	e, ok := l.byName[name]
	return e, ok
}

// List returns every playbook, sorted by name.
func (l *Library) List() []*Entry {
	out := make([]*Entry, 0, len(l.byName))
	for _, e := range l.byName {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *Entry) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Names returns the playbook names, sorted.
func (l *Library) Names() []string {
	var out []string
	for _, e := range l.List() {
		out = append(out, e.Name)
	}
	return out
}
