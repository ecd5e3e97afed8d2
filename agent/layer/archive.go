//go:build linux

package layer

import (
	"archive/tar"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults for [Options].
const (
	DefaultMaxBytes   = 256 << 20
	DefaultMaxEntries = 100_000
	DefaultMaxDepth   = 128
	DefaultMaxSkipped = 10_000
)

// Options bound an [Archive]. Zero values mean the defaults.
type Options struct {
	// MaxBytes bounds the file bytes written (headers not counted).
	MaxBytes int64
	// MaxEntries bounds the entries written: files, directories, links,
	// whiteouts.
	MaxEntries int
	// MaxDepth bounds how deep directories are walked.
	MaxDepth int
	// MaxSkipped bounds Summary.Skipped; further skipped entries are only
	// counted in Summary.SkippedUnlisted.
	MaxSkipped int
}

func (o Options) withDefaults() (Options, error) {
	if o.MaxBytes < 0 || o.MaxEntries < 0 || o.MaxDepth < 0 || o.MaxSkipped < 0 {
		return o, fmt.Errorf("layer options: negative bound in %+v", o)
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.MaxDepth == 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	if o.MaxSkipped == 0 {
		o.MaxSkipped = DefaultMaxSkipped
	}
	return o, nil
}

// Type is the kind of a file in the upper directory.
type Type string

// Types.
const (
	TypeFile     Type = "file"
	TypeDir      Type = "dir"
	TypeSymlink  Type = "symlink"
	TypeCharDev  Type = "chardev"
	TypeBlockDev Type = "blockdev"
	TypeFIFO     Type = "fifo"
	TypeSocket   Type = "socket"
	TypeUnknown  Type = "unknown"
)

// Reason says why an entry was skipped.
type Reason string

// Reasons.
const (
	ReasonSpecial  Reason = "special file"            // device, FIFO, socket
	ReasonBudget   Reason = "byte budget exceeded"    // Options.MaxBytes
	ReasonEntries  Reason = "entry bound reached"     // Options.MaxEntries; a directory's contents are not walked
	ReasonDepth    Reason = "too deep"                // Options.MaxDepth; contents not walked
	ReasonMount    Reason = "another file system"     // a mount point; contents not walked
	ReasonChanged  Reason = "changed during the walk" // replaced, removed, or a link swapped in
	ReasonTooMany  Reason = "too many names to list"  // Options.MaxEntries+MaxSkipped; the rest not walked
	ReasonReadFail Reason = "could not be read"       // see Skipped.Err
)

// File is an entry written to the tar.
type File struct {
	Path    string      `json:"path"` // relative to the upper directory, slash-separated
	Type    Type        `json:"type"`
	Mode    fs.FileMode `json:"mode"`
	UID     int         `json:"uid"`
	GID     int         `json:"gid"`
	ModTime time.Time   `json:"mtime"`
	Size    int64       `json:"size,omitempty"`   // bytes in the tar, for a file
	SHA256  string      `json:"sha256,omitempty"` // hex, of the bytes in the tar, for a file
	Target  string      `json:"target,omitempty"` // for a symlink, never resolved
	Links   uint64      `json:"links,omitempty"`  // hard links, when more than one
	// Changed says the file changed size while read (see the package doc).
	Changed bool `json:"changed,omitempty"`
	// WhiteoutName says the name starts with .wh.: a tar reader following
	// the OCI convention takes the entry for a whiteout.
	WhiteoutName bool `json:"whiteoutName,omitempty"`
}

// Skipped is an entry left out of the tar.
type Skipped struct {
	Path   string `json:"path"`
	Type   Type   `json:"type"`
	Size   int64  `json:"size"`
	Reason Reason `json:"reason"`
	Err    string `json:"error,omitempty"`
}

// Summary says what an [Archive] wrote and left out.
type Summary struct {
	Files   []File    `json:"files"`
	Skipped []Skipped `json:"skipped"`
	// SkippedUnlisted counts skipped entries beyond Options.MaxSkipped.
	SkippedUnlisted int `json:"skippedUnlisted,omitempty"`
	// Deleted lists the paths the container deleted (whiteouts).
	Deleted []string `json:"deleted"`
	// Opaque lists directories whose lower contents the container hid.
	Opaque []string `json:"opaque"`
	// Bytes is the total of file bytes written.
	Bytes int64 `json:"bytes"`
}

// Archive writes the overlayfs upper directory upper to w as a PAX tar and
// says what it wrote. Entries that cannot be archived are skipped and
// listed, not errors; an error means upper could not be opened, writing to
// w failed or ctx ended, and the tar in w is then incomplete (the Summary
// holds what was written up to then).
func Archive(ctx context.Context, upper string, w io.Writer, opts Options) (Summary, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return Summary{}, err
	}
	fd, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return Summary{}, fmt.Errorf("archiving the upper directory %s: %w", upper, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return Summary{}, fmt.Errorf("archiving the upper directory %s: %w", upper, err)
	}
	a := &archiver{ctx: ctx, tw: tar.NewWriter(w), opts: opts, dev: st.Dev, buf: make([]byte, 128<<10)}
	a.sum.Files, a.sum.Skipped, a.sum.Deleted, a.sum.Opaque = []File{}, []Skipped{}, []string{}, []string{}
	if err := a.dir(fd, "", 0); err != nil {
		return a.sum, fmt.Errorf("archiving the upper directory %s: %w", upper, err)
	}
	if err := a.tw.Close(); err != nil {
		return a.sum, fmt.Errorf("archiving the upper directory %s: %w", upper, err)
	}
	return a.sum, nil
}

type archiver struct {
	ctx context.Context
	tw  *tar.Writer
	// afterHeader, if set, runs after a file's header is written: tests
	// change the file there, as an attacker racing the walk would.
	afterHeader func(p string)
	opts        Options
	dev         uint64
	entries     int
	sum         Summary
	buf         []byte
}

// fatal marks an error that ends the walk: writing the tar failed, or ctx
// ended. Anything else skips one entry.
type fatal struct{ error }

func (f fatal) Unwrap() error { return f.error }

func (a *archiver) skip(p string, t Type, size int64, r Reason, err error) {
	if len(a.sum.Skipped) >= a.opts.MaxSkipped {
		a.sum.SkippedUnlisted++
		return
	}
	s := Skipped{Path: p, Type: t, Size: size, Reason: r}
	if err != nil {
		s.Err = err.Error()
	}
	a.sum.Skipped = append(a.sum.Skipped, s)
}

// dir archives the contents of the directory open as fd, at rel, and
// closes fd.
func (a *archiver) dir(fd int, rel string, depth int) error {
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	names, err := a.list(f)
	if err != nil {
		a.skip(cmp.Or(rel, "."), TypeDir, 0, ReasonReadFail, fmt.Errorf("listing: %w", err))
		return nil
	}
	slices.Sort(names)
	for _, name := range names {
		if err := a.ctx.Err(); err != nil {
			return fatal{err}
		}
		if err := a.entry(fd, rel, name, depth); err != nil {
			return err
		}
	}
	return nil
}

// list reads a directory's names, at most as many as could be archived or
// listed as skipped: a directory of millions of names (cheap to make) is
// not held in memory whole. A directory cut short is named in
// Summary.Skipped; which names it lost depends on the directory's order.
func (a *archiver) list(f *os.File) ([]string, error) {
	limit := a.opts.MaxEntries + a.opts.MaxSkipped
	var names []string
	for {
		batch, err := f.Readdirnames(1024)
		names = append(names, batch...)
		if errors.Is(err, io.EOF) || (err == nil && len(batch) == 0) {
			return names, nil
		}
		if err != nil {
			return nil, err
		}
		if len(names) > limit {
			a.skip(cmp.Or(f.Name(), "."), TypeDir, 0, ReasonTooMany, fmt.Errorf("listed %d names, more than %d", len(names), limit))
			return names, nil
		}
	}
}

func typeOf(mode uint32) Type {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return TypeFile
	case unix.S_IFDIR:
		return TypeDir
	case unix.S_IFLNK:
		return TypeSymlink
	case unix.S_IFCHR:
		return TypeCharDev
	case unix.S_IFBLK:
		return TypeBlockDev
	case unix.S_IFIFO:
		return TypeFIFO
	case unix.S_IFSOCK:
		return TypeSocket
	}
	return TypeUnknown
}

// entry archives the entry name of the directory dirfd (at rel).
func (a *archiver) entry(dirfd int, rel, name string, depth int) error {
	p := path.Join(rel, name)
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		a.skip(p, TypeUnknown, 0, ReasonChanged, err)
		return nil
	}
	t := typeOf(st.Mode)
	switch t {
	case TypeCharDev:
		if st.Rdev == 0 {
			return a.whiteout(rel, name, &st)
		}
		a.skip(p, t, 0, ReasonSpecial, nil)
		return nil
	case TypeBlockDev, TypeFIFO, TypeSocket, TypeUnknown:
		a.skip(p, t, 0, ReasonSpecial, nil)
		return nil
	}
	if st.Dev != a.dev && t != TypeSymlink {
		// A mount on the upper directory (a file or a directory bound
		// there on the node) is not the container's writing.
		a.skip(p, t, sizeOf(&st), ReasonMount, nil)
		return nil
	}
	if a.entries >= a.opts.MaxEntries {
		a.skip(p, t, sizeOf(&st), ReasonEntries, nil)
		return nil
	}
	switch t {
	case TypeSymlink:
		return a.symlink(dirfd, p, name, &st)
	case TypeDir:
		return a.subdir(dirfd, p, name, &st, depth)
	default:
		return a.file(dirfd, p, name, &st)
	}
}

func sizeOf(st *unix.Stat_t) int64 {
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		return st.Size
	}
	return 0
}

// header is the tar header for st, at p, with the fields the Summary
// records.
func header(p string, st *unix.Stat_t) (*tar.Header, File) {
	perm := fs.FileMode(st.Mode & 0o777)
	mode := int64(st.Mode & 0o7777) // tar's c_ISUID, c_ISGID, c_ISVTX match the kernel's
	if st.Mode&unix.S_ISUID != 0 {
		perm |= fs.ModeSetuid
	}
	if st.Mode&unix.S_ISGID != 0 {
		perm |= fs.ModeSetgid
	}
	if st.Mode&unix.S_ISVTX != 0 {
		perm |= fs.ModeSticky
	}
	mtime := time.Unix(st.Mtim.Unix()).UTC()
	h := &tar.Header{Name: p, Mode: mode, Uid: int(st.Uid), Gid: int(st.Gid), ModTime: mtime, Format: tar.FormatPAX}
	f := File{Path: p, Mode: perm, UID: int(st.Uid), GID: int(st.Gid), ModTime: mtime}
	if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		f.Links = uint64(st.Nlink)
	}
	return h, f
}

func (a *archiver) write(h *tar.Header) error {
	if err := a.tw.WriteHeader(h); err != nil {
		return fatal{fmt.Errorf("writing %s: %w", h.Name, err)}
	}
	a.entries++
	return nil
}

func (a *archiver) whiteout(rel, name string, st *unix.Stat_t) error {
	p := path.Join(rel, name)
	a.sum.Deleted = append(a.sum.Deleted, p)
	h, _ := header(path.Join(rel, ".wh."+name), st)
	h.Typeflag, h.Mode = tar.TypeReg, 0
	return a.write(h)
}

func (a *archiver) symlink(dirfd int, p, name string, st *unix.Stat_t) error {
	target, err := readlinkat(dirfd, name)
	if err != nil {
		a.skip(p, TypeSymlink, 0, ReasonChanged, err)
		return nil
	}
	h, f := header(p, st)
	h.Typeflag, h.Linkname = tar.TypeSymlink, target
	f.Type, f.Target, f.Mode = TypeSymlink, target, f.Mode|fs.ModeSymlink
	f.WhiteoutName = isWhiteoutName(name)
	if err := a.write(h); err != nil {
		return err
	}
	a.sum.Files = append(a.sum.Files, f)
	return nil
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		b := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, b)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(b[:n]), nil
		}
		if size > unix.PathMax*4 {
			return "", fmt.Errorf("link target longer than %d bytes", size)
		}
	}
}

func isWhiteoutName(name string) bool { return len(name) > 4 && name[:4] == ".wh." }

// same says fd is the entry that was listed.
func same(fd int, st *unix.Stat_t) error {
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		return err
	}
	if now.Dev != st.Dev || now.Ino != st.Ino || now.Mode&unix.S_IFMT != st.Mode&unix.S_IFMT {
		return errors.New("replaced between listing and opening")
	}
	return nil
}

func (a *archiver) subdir(dirfd int, p, name string, st *unix.Stat_t, depth int) error {
	if depth >= a.opts.MaxDepth {
		a.skip(p, TypeDir, 0, ReasonDepth, nil)
		return nil
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		a.skip(p, TypeDir, 0, ReasonChanged, err)
		return nil
	}
	if err := same(fd, st); err != nil {
		unix.Close(fd)
		a.skip(p, TypeDir, 0, ReasonChanged, err)
		return nil
	}
	h, f := header(p+"/", st)
	h.Typeflag = tar.TypeDir
	f.Path, f.Type, f.Mode = p, TypeDir, f.Mode|fs.ModeDir
	f.WhiteoutName = isWhiteoutName(name)
	if err := a.write(h); err != nil {
		unix.Close(fd)
		return err
	}
	a.sum.Files = append(a.sum.Files, f)
	if opaque(fd) {
		a.sum.Opaque = append(a.sum.Opaque, p)
		oh, _ := header(path.Join(p, ".wh..wh..opq"), st)
		oh.Typeflag, oh.Mode = tar.TypeReg, 0
		if err := a.write(oh); err != nil {
			unix.Close(fd)
			return err
		}
	}
	return a.dir(fd, p, depth+1)
}

// opaque says the directory open as fd is an overlay opaque directory. The
// user.overlay namespace is the one of overlays mounted with userxattr
// (rootless); containerd's snapshotter uses trusted.
func opaque(fd int) bool {
	for _, attr := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		b := make([]byte, 8)
		n, err := unix.Fgetxattr(fd, attr, b)
		if err == nil && n == 1 && b[0] == 'y' {
			return true
		}
	}
	return false
}
