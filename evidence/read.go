package evidence

import (
	"archive/tar"
	"bufio"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// maxMetaSize bounds the bundle's own files read into memory (manifest,
// statement, envelope, custody log); a larger one is reported, not read.
const maxMetaSize = 512 << 20

// digest is a file's hash and size.
type digest struct {
	SHA256 string // "" when not hashed
	Size   int64
}

// tree is what a bundle holds, read from a directory or a .tar.gz.
type tree struct {
	// files are all regular files by slash path, the bundle's own included.
	files map[string]digest
	// meta holds the content of the bundle's own files but report.html.
	meta map[string][]byte
	// problems are entries that can be no part of a bundle: links,
	// devices, unsafe or repeated names, own files too large to read.
	problems []Problem
}

func newTree() *tree {
	return &tree{files: map[string]digest{}, meta: map[string][]byte{}}
}

func (t *tree) problem(kind ProblemKind, path, format string, args ...any) {
	t.problems = append(t.problems, Problem{Kind: kind, Path: path, Message: fmt.Sprintf(format, args...)})
}

// isMeta reports whether name is one of the bundle's own files that a
// verifier reads whole.
func isMeta(name string) bool {
	switch name {
	case ManifestFile, CustodyFile, StatementFile, EnvelopeFile:
		return true
	}
	return false
}

// readTree reads the bundle at path, a directory or a .tar.gz; hash says
// whether to hash every file or only to list them.
func readTree(path string, hash bool) (*tree, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return readDir(path, hash)
	}
	return readArchive(path, hash)
}

// readDir reads a bundle directory, hashing its files in parallel: one
// worker per CPU, the largest files first so that one big file does not
// start last.
func readDir(root string, hash bool) (*tree, error) {
	t := newTree()
	type job struct {
		name string
		size int64
	}
	var jobs []job
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root || d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if !d.Type().IsRegular() {
			t.problem(ProblemInvalid, name, "not a regular file (%s)", d.Type())
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if isMeta(name) {
			if fi.Size() > maxMetaSize {
				t.problem(ProblemInvalid, name, "%d bytes: too large for a bundle's own file", fi.Size())
			} else {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				t.meta[name] = b
				t.files[name] = digest{SHA256: sha256Hex(b), Size: int64(len(b))}
				return nil
			}
		}
		jobs = append(jobs, job{name, fi.Size()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !hash {
		for _, j := range jobs {
			t.files[j.name] = digest{Size: j.size}
		}
		return t, nil
	}

	slices.SortFunc(jobs, func(a, b job) int { return cmp.Compare(b.size, a.size) })
	var (
		mu   sync.Mutex
		errs []error
		next = make(chan job)
		wg   sync.WaitGroup
	)
	for range min(runtime.GOMAXPROCS(0), max(len(jobs), 1)) {
		wg.Go(func() {
			buf := make([]byte, bufSize)
			for j := range next {
				d, err := hashFile(filepath.Join(root, filepath.FromSlash(j.name)), buf)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					t.files[j.name] = d
				}
				mu.Unlock()
			}
		})
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

func hashFile(path string, buf []byte) (digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return digest{}, err
	}
	defer f.Close()
	d, err := hashReader(f, buf)
	if err != nil {
		return digest{}, fmt.Errorf("reading %s: %w", path, err)
	}
	return d, nil
}

// hashReader hashes r with reads as large as buf, which is what makes
// hashing run at the speed of SHA-256 rather than of syscalls.
func hashReader(r io.Reader, buf []byte) (digest, error) {
	h := sha256.New()
	var size int64
	for {
		n, err := r.Read(buf)
		h.Write(buf[:n])
		size += int64(n)
		if err == io.EOF {
			return digest{SHA256: hex.EncodeToString(h.Sum(nil)), Size: size}, nil
		}
		if err != nil {
			return digest{}, err
		}
	}
}

// readArchive reads a bundle packed as a .tar.gz in one pass, without
// extracting it: each file is hashed as it streams by.
func readArchive(path string, hash bool) (*tree, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(bufio.NewReaderSize(f, bufSize))
	if err != nil {
		return nil, fmt.Errorf("%s is neither a directory nor a .tar.gz: %w", path, err)
	}
	defer gz.Close()
	t := newTree()
	seen := map[string]bool{}
	tr := tar.NewReader(gz)
	buf := make([]byte, bufSize)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		name, ok := archiveName(h.Name)
		switch {
		case !ok:
			t.problem(ProblemInvalid, h.Name, "unsafe path in the archive")
			continue
		case name == ".":
			continue
		case seen[name]:
			t.problem(ProblemInvalid, name, "in the archive more than once")
			continue
		}
		seen[name] = true
		switch {
		case h.Typeflag == tar.TypeDir:
			continue
		case h.Typeflag != tar.TypeReg:
			t.problem(ProblemInvalid, name, "not a regular file (tar type %q)", h.Typeflag)
			continue
		case isMeta(name) && h.Size <= maxMetaSize:
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, fmt.Errorf("reading %s in %s: %w", name, path, err)
			}
			t.meta[name] = b
			t.files[name] = digest{SHA256: sha256Hex(b), Size: int64(len(b))}
			continue
		case isMeta(name):
			t.problem(ProblemInvalid, name, "%d bytes: too large for a bundle's own file", h.Size)
		}
		if !hash {
			t.files[name] = digest{Size: h.Size}
			continue
		}
		d, err := hashReader(tr, buf)
		if err != nil {
			return nil, fmt.Errorf("reading %s in %s: %w", name, path, err)
		}
		t.files[name] = d
	}
	return t, nil
}

// archiveName turns a tar entry's name into a bundle path: "./" and a
// directory's trailing "/" dropped, and refused unless it is a clean
// relative path (no "..", not absolute, no backslash).
func archiveName(name string) (string, bool) {
	name = strings.TrimSuffix(strings.TrimPrefix(name, "./"), "/")
	if name == "" || name == "." {
		return ".", true
	}
	if !fs.ValidPath(name) || strings.ContainsAny(name, "\\\x00") {
		return "", false
	}
	return name, true
}
