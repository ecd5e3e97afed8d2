package evidence

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"kir.dev/kir/internal/durable"
)

// ErrUnsafeArchive is returned when unpacking an archive with an entry that
// could land outside the target directory (absolute, "..") or that is no
// plain file or directory (a link, a device).
var ErrUnsafeArchive = errors.New("unsafe archive")

// packTime is every entry's mtime: the same bundle always packs to the
// same bytes.
var packTime = time.Unix(0, 0).UTC()

// Pack writes the bundle in dir to out as a deterministic .tar.gz: entries
// sorted by path, relative to the bundle's root, modes kept, mtimes fixed
// at the epoch, uid/gid 0 and no owner names. Packing the same bundle
// twice gives the same bytes (with the same Go release: gzip's output is
// Go's). out must not exist, nor be inside dir.
func Pack(dir, out string) (err error) {
	if inside(dir, out) {
		return fmt.Errorf("packing %s: %s is inside the bundle", dir, out)
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("packing %s: %s: %w", dir, out, fs.ErrExist)
	}
	// Written under a temporary name and renamed: an archive under its
	// name is always whole.
	f, err := os.CreateTemp(filepath.Dir(out), tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("packing %s: %w", dir, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := pack(dir, f, nil); err != nil {
		return fmt.Errorf("packing %s: %w", dir, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("packing %s: %w", dir, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("packing %s: %w", dir, err)
	}
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("packing %s: %s: %w", dir, out, fs.ErrExist)
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return fmt.Errorf("packing %s: %w", dir, err)
	}
	return durable.SyncDir(filepath.Dir(out))
}

// inside reports whether path is dir or lies in it.
func inside(dir, path string) bool {
	d, err1 := filepath.Abs(dir)
	p, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// pack writes the tar.gz of dir to w. WalkDir visits each directory's
// entries in lexical order, which makes the order deterministic. stop, if
// not nil, is asked before each file whether to give up (a context's Err).
func pack(dir string, w io.Writer, stop func() error) error {
	gz, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	buf := make([]byte, bufSize)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		if stop != nil {
			if err := stop(); err != nil {
				return err
			}
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: int64(fi.Mode().Perm()), ModTime: packTime}
		switch {
		case d.IsDir():
			h.Typeflag, h.Name = tar.TypeDir, h.Name+"/"
			return tw.WriteHeader(h)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: not a regular file (%s)", h.Name, d.Type())
		}
		h.Typeflag, h.Size = tar.TypeReg, fi.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyBuffer(tw, onlyReader{f}, buf); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// unpack extracts the tar.gz r into the empty directory dest. It refuses
// anything but clean relative paths to plain files and directories, and
// creates every file exclusively, so an entry cannot overwrite another or
// escape dest. Modes are applied once all is written.
func unpack(r io.Reader, dest string) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	defer gz.Close()
	type mode struct {
		path string
		perm fs.FileMode
	}
	var files, dirs []mode
	tr := tar.NewReader(gz)
	buf := make([]byte, bufSize)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name, ok := archiveName(h.Name)
		if !ok {
			return fmt.Errorf("%w: entry %q is not a clean relative path", ErrUnsafeArchive, h.Name)
		}
		if name == "." {
			continue
		}
		target := filepath.Join(dest, filepath.FromSlash(name))
		perm := fs.FileMode(h.Mode) & fs.ModePerm
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, mode{target, perm})
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
				return err
			}
			if err := extractFile(target, tr, buf); err != nil {
				return fmt.Errorf("extracting %s: %w", name, err)
			}
			files = append(files, mode{target, perm})
		default:
			return fmt.Errorf("%w: entry %q has tar type %q: only files and directories are allowed", ErrUnsafeArchive, h.Name, h.Typeflag)
		}
	}
	for _, f := range files {
		if err := os.Chmod(f.path, f.perm); err != nil {
			return err
		}
	}
	// Deepest first, so that a read-only directory is closed last.
	slices.SortFunc(dirs, func(a, b mode) int { return strings.Compare(b.path, a.path) })
	for _, d := range dirs {
		if err := os.Chmod(d.path, d.perm); err != nil {
			return err
		}
	}
	return nil
}

func extractFile(path string, r io.Reader, buf []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(onlyWriter{f}, onlyReader{r}, buf); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
