package collect_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"kir.dev/kir/evidence"
)

// dirSink is a small evidence.Sink for tests, independent of the evidence
// package: it keeps Put's contract (exclusive, hashed while written,
// synced unless noSync, read-only) and remembers files and custody.
type dirSink struct {
	dir    string
	noSync bool

	mu      sync.Mutex
	files   map[string]evidence.File
	custody []evidence.Entry
}

func newDirSink(dir string) *dirSink {
	return &dirSink{dir: dir, files: map[string]evidence.File{}}
}

func (s *dirSink) Put(name string, r io.Reader, src evidence.Source) (evidence.File, error) {
	if !fs.ValidPath(name) || name == "." {
		return evidence.File{}, fmt.Errorf("put %q: not a clean relative path", name)
	}
	final := filepath.Join(s.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return evidence.File{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(final), ".put-*")
	if err != nil {
		return evidence.File{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err != nil {
		return evidence.File{}, fmt.Errorf("put %s: %w", name, err)
	}
	if !s.noSync {
		if err := tmp.Sync(); err != nil {
			return evidence.File{}, err
		}
	}
	if err := tmp.Chmod(0o444); err != nil {
		return evidence.File{}, err
	}
	// A hard link fails when the name exists: exclusive, unlike rename.
	if err := os.Link(tmp.Name(), final); err != nil {
		return evidence.File{}, fmt.Errorf("put %s: %w", name, err)
	}
	f := evidence.File{Path: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n, Source: src}
	s.mu.Lock()
	s.files[name] = f
	s.mu.Unlock()
	return f, nil
}

func (s *dirSink) Custody(e evidence.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.custody = append(s.custody, e)
	return nil
}

func (s *dirSink) file(name string) (evidence.File, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.files[name]
	return f, ok
}

func (s *dirSink) read(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(s.dir, filepath.FromSlash(name)))
}

func (s *dirSink) entries() []evidence.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]evidence.Entry(nil), s.custody...)
}
