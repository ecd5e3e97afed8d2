//go:build linux

package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// entry is what the tests check of a tar entry.
type entry struct {
	Name     string
	Type     byte
	Mode     int64
	UID, GID int
	ModTime  time.Time
	Link     string
	Body     string
}

func readTar(t *testing.T, b []byte) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading the tar back: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("reading %s back: %v", h.Name, err)
		}
		out = append(out, entry{h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime.UTC(), h.Linkname, string(body)})
	}
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

var mtime = time.Date(2026, 12, 6, 9, 0, 0, 123456789, time.UTC)

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// touch sets p's owner and mtime without following a link.
func touch(t *testing.T, p string, uid, gid int) {
	t.Helper()
	must(t, os.Lchown(p, uid, gid))
	ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	must(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
}

// setOpaque marks dir opaque as overlayfs does, or says why it cannot.
func setOpaque(dir string) error {
	return unix.Setxattr(dir, "trusted.overlay.opaque", []byte("y"), 0)
}

// TestArchive builds an upper directory as an attacker's container leaves
// it and checks the tar and the Summary exactly.
func TestArchive(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chown, mknod of a whiteout, trusted xattrs")
	}
	t.Parallel()
	upper := filepath.Join(t.TempDir(), "fs")
	j := func(p string) string { return filepath.Join(upper, p) }
	for _, d := range []string{"", "tmp", "a", "a/b", "opq", "etc"} {
		must(t, os.Mkdir(j(d), 0o755))
	}
	files := map[string]string{
		"tmp/miner":    "#!/bin/sh\nexec xmrig -o pool.example:3333\n",
		"a/b/nested":   "nested bytes",
		"opq/new":      "replaced contents",
		"tmp/zzz":      "small, after the large one: still archived",
		"tmp/.wh.fake": "a file whose name mimics a whiteout",
		"big":          strings.Repeat("x", 4096),
	}
	for p, body := range files {
		must(t, os.WriteFile(j(p), []byte(body), 0o640))
	}
	must(t, os.Link(j("tmp/miner"), j("tmp/miner-link")))
	must(t, os.Symlink("/etc/hostname", j("etc/hostname-link")))
	must(t, os.Symlink("/etc", j("etc-dir-link")))
	must(t, syscall.Mkfifo(j("tmp/fifo"), 0o600))
	must(t, syscall.Mknod(j("etc/gone"), syscall.S_IFCHR, 0)) // 0/0, mode 0: an overlay whiteout
	must(t, syscall.Mknod(j("etc/null"), syscall.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	l, err := net.Listen("unix", j("tmp/sock"))
	must(t, err)
	defer l.Close()
	opaqueOK := true
	if err := setOpaque(j("opq")); err != nil {
		opaqueOK = false
		t.Logf("the opaque directory sub-case is not checked: setting trusted.overlay.opaque here: %v", err)
	}
	for _, p := range []string{"tmp", "a", "a/b", "opq", "etc", "tmp/miner", "a/b/nested", "opq/new", "tmp/zzz",
		"tmp/.wh.fake", "big", "etc/hostname-link", "etc-dir-link", "etc/gone"} {
		touch(t, j(p), 1234, 5678)
	}
	// After the chown, which clears setuid; raw modes, as os.Chmod takes
	// Go's FileMode bits. chmod leaves the mtime.
	must(t, unix.Chmod(j("tmp"), 0o1777))
	must(t, unix.Chmod(j("tmp/miner"), 0o4755))

	var buf bytes.Buffer
	got, err := Archive(t.Context(), upper, &buf, Options{MaxBytes: 1024})
	must(t, err)

	// Mode as the kernel has it: the setuid bit is 04000 in both.
	dir := func(name string, mode int64) entry {
		return entry{Name: name, Type: tar.TypeDir, Mode: mode, UID: 1234, GID: 5678, ModTime: mtime}
	}
	file := func(name string, mode int64, uid, gid int, body string) entry {
		return entry{Name: name, Type: tar.TypeReg, Mode: mode, UID: uid, GID: gid, ModTime: mtime, Body: body}
	}
	link := func(name, target string) entry {
		return entry{Name: name, Type: tar.TypeSymlink, Mode: 0o777, UID: 1234, GID: 5678, ModTime: mtime, Link: target}
	}
	want := []entry{
		dir("a/", 0o755),
		dir("a/b/", 0o755),
		file("a/b/nested", 0o640, 1234, 5678, files["a/b/nested"]),
		dir("etc/", 0o755),
		file("etc/.wh.gone", 0, 1234, 5678, ""),
		link("etc/hostname-link", "/etc/hostname"),
		link("etc-dir-link", "/etc"),
		dir("opq/", 0o755),
	}
	if opaqueOK {
		want = append(want, file("opq/.wh..wh..opq", 0, 1234, 5678, ""))
	}
	want = append(want,
		file("opq/new", 0o640, 1234, 5678, files["opq/new"]),
		dir("tmp/", 0o1777),
		file("tmp/.wh.fake", 0o640, 1234, 5678, files["tmp/.wh.fake"]),
		file("tmp/miner", 0o4755, 1234, 5678, files["tmp/miner"]),
		file("tmp/miner-link", 0o4755, 1234, 5678, files["tmp/miner"]),
		file("tmp/zzz", 0o640, 1234, 5678, files["tmp/zzz"]),
	)
	if diff := cmp.Diff(want, readTar(t, buf.Bytes())); diff != "" {
		t.Errorf("tar entries (-want +got):\n%s", diff)
	}
	if host, err := os.ReadFile("/etc/hostname"); err == nil && len(bytes.TrimSpace(host)) > 3 &&
		bytes.Contains(buf.Bytes(), bytes.TrimSpace(host)) {
		t.Errorf("the tar holds /etc/hostname's contents %q: a link was followed", bytes.TrimSpace(host))
	}

	// The Summary: every archived file with its hash, what was skipped and
	// why, what was deleted.
	for _, f := range got.Files {
		if f.Type != TypeFile {
			continue
		}
		body, err := os.ReadFile(j(f.Path))
		must(t, err)
		if f.SHA256 != sha(string(body)) || f.Size != int64(len(body)) {
			t.Errorf("%s: summary says %d bytes, sha256 %s; the file has %d, %s", f.Path, f.Size, f.SHA256, len(body), sha(string(body)))
		}
	}
	var paths []string
	for _, f := range got.Files {
		paths = append(paths, string(f.Type)+" "+f.Path)
	}
	wantPaths := []string{"dir a", "dir a/b", "file a/b/nested", "dir etc", "symlink etc/hostname-link", "symlink etc-dir-link",
		"dir opq", "file opq/new", "dir tmp", "file tmp/.wh.fake", "file tmp/miner", "file tmp/miner-link", "file tmp/zzz"}
	if diff := cmp.Diff(wantPaths, paths); diff != "" {
		t.Errorf("Summary.Files (-want +got):\n%s", diff)
	}
	wantSkipped := []Skipped{
		{Path: "big", Type: TypeFile, Size: 4096, Reason: ReasonBudget},
		{Path: "etc/null", Type: TypeCharDev, Reason: ReasonSpecial},
		{Path: "tmp/fifo", Type: TypeFIFO, Reason: ReasonSpecial},
		{Path: "tmp/sock", Type: TypeSocket, Reason: ReasonSpecial},
	}
	if diff := cmp.Diff(wantSkipped, got.Skipped); diff != "" {
		t.Errorf("Summary.Skipped (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"etc/gone"}, got.Deleted); diff != "" {
		t.Errorf("Summary.Deleted (-want +got):\n%s", diff)
	}
	if opaqueOK {
		if diff := cmp.Diff([]string{"opq"}, got.Opaque); diff != "" {
			t.Errorf("Summary.Opaque (-want +got):\n%s", diff)
		}
	}
	var total int64
	for _, f := range got.Files {
		total += f.Size
	}
	if got.Bytes != total || total == 0 || total > 1024 {
		t.Errorf("Summary.Bytes = %d; files total %d, budget 1024", got.Bytes, total)
	}
	byPath := map[string]File{}
	for _, f := range got.Files {
		byPath[f.Path] = f
	}
	if f := byPath["tmp/miner"]; f.Links != 2 || f.UID != 1234 || f.GID != 5678 || !f.ModTime.Equal(mtime) || f.Mode.Perm() != 0o755 || f.Mode&os.ModeSetuid == 0 {
		t.Errorf("tmp/miner in the Summary: %+v; want 2 links, 1234:5678, mtime %v, setuid 0755", f, mtime)
	}
	if !byPath["tmp/.wh.fake"].WhiteoutName || byPath["tmp/miner"].WhiteoutName {
		t.Errorf("WhiteoutName: tmp/.wh.fake %v, tmp/miner %v; want true, false",
			byPath["tmp/.wh.fake"].WhiteoutName, byPath["tmp/miner"].WhiteoutName)
	}
}

// TestSwappedForLink replaces a listed file, and a listed directory, by a
// symbolic link to a secret outside the upper directory between the listing
// and the open, as an attacker racing the walk would: the entry is skipped
// as changed and the secret is never read.
func TestSwappedForLink(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	const secret = "the node's secret, outside upper"
	must(t, os.WriteFile(filepath.Join(outside, "secret"), []byte(secret), 0o600))
	upper := t.TempDir()
	must(t, os.WriteFile(filepath.Join(upper, "f"), []byte("innocent"), 0o644))
	must(t, os.Mkdir(filepath.Join(upper, "d"), 0o755))

	dirfd, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, err)
	defer unix.Close(dirfd)
	var fst, dst unix.Stat_t
	must(t, unix.Fstatat(dirfd, "f", &fst, unix.AT_SYMLINK_NOFOLLOW))
	must(t, unix.Fstatat(dirfd, "d", &dst, unix.AT_SYMLINK_NOFOLLOW))
	// The swap.
	must(t, os.Remove(filepath.Join(upper, "f")))
	must(t, os.Symlink(filepath.Join(outside, "secret"), filepath.Join(upper, "f")))
	must(t, os.Remove(filepath.Join(upper, "d")))
	must(t, os.Symlink(outside, filepath.Join(upper, "d")))

	var buf bytes.Buffer
	opts, err := Options{}.withDefaults()
	must(t, err)
	a := &archiver{ctx: context.Background(), tw: tar.NewWriter(&buf), opts: opts, dev: dst.Dev, buf: make([]byte, 4096)}
	must(t, a.file(dirfd, "f", "f", &fst))
	must(t, a.subdir(dirfd, "d", "d", &dst, 0))
	must(t, a.tw.Close())
	if bytes.Contains(buf.Bytes(), []byte(secret)) || bytes.Contains(buf.Bytes(), []byte("secret")) {
		t.Errorf("the tar holds the secret outside upper, or its name: a swapped link was followed")
	}
	if len(a.sum.Files) != 0 {
		t.Errorf("archived %+v; want nothing", a.sum.Files)
	}
	var reasons []string
	for _, s := range a.sum.Skipped {
		reasons = append(reasons, s.Path+": "+string(s.Reason))
	}
	if diff := cmp.Diff([]string{"f: " + string(ReasonChanged), "d: " + string(ReasonChanged)}, reasons); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
}

// TestBounds checks the entry bound, that a directory beyond it is not
// walked, and that an ended context ends the walk with an error.
func TestBounds(t *testing.T) {
	t.Parallel()
	upper := t.TempDir()
	for _, p := range []string{"a", "b", "c"} {
		must(t, os.WriteFile(filepath.Join(upper, p), []byte(p), 0o644))
	}
	must(t, os.Mkdir(filepath.Join(upper, "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(upper, "d", "inner"), []byte("x"), 0o644))
	must(t, os.Mkdir(filepath.Join(upper, "d", "e"), 0o755))

	var buf bytes.Buffer
	got, err := Archive(t.Context(), upper, &buf, Options{MaxEntries: 2})
	must(t, err)
	var names []string
	for _, e := range readTar(t, buf.Bytes()) {
		names = append(names, e.Name)
	}
	if diff := cmp.Diff([]string{"a", "b"}, names); diff != "" {
		t.Errorf("tar entries (-want +got):\n%s", diff)
	}
	want := []Skipped{{Path: "c", Type: TypeFile, Size: 1, Reason: ReasonEntries}, {Path: "d", Type: TypeDir, Reason: ReasonEntries}}
	if diff := cmp.Diff(want, got.Skipped); diff != "" {
		t.Errorf("Summary.Skipped (-want +got):\n%s", diff)
	}

	got, err = Archive(t.Context(), upper, io.Discard, Options{MaxSkipped: 3, MaxBytes: 1, MaxDepth: 1})
	must(t, err)
	// a fills the 1-byte budget; b and c are beyond it; d is at depth 0,
	// d/e at depth 1 is too deep; d/inner, beyond the budget, is the fourth
	// skipped, counted only.
	want = []Skipped{
		{Path: "b", Type: TypeFile, Size: 1, Reason: ReasonBudget},
		{Path: "c", Type: TypeFile, Size: 1, Reason: ReasonBudget},
		{Path: "d/e", Type: TypeDir, Reason: ReasonDepth},
	}
	if diff := cmp.Diff(want, got.Skipped); diff != "" || got.SkippedUnlisted != 1 || got.Bytes != 1 {
		t.Errorf("with MaxSkipped 3, MaxBytes 1, MaxDepth 1: unlisted %d, bytes %d (want 1, 1); skipped (-want +got):\n%s",
			got.SkippedUnlisted, got.Bytes, diff)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Archive(ctx, upper, io.Discard, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Archive with an ended context: %v; want context.Canceled", err)
	}
	if _, err := Archive(t.Context(), filepath.Join(upper, "a"), io.Discard, Options{}); err == nil || !strings.Contains(err.Error(), "upper directory") {
		t.Errorf("Archive of a file: %v; want an error naming the upper directory", err)
	}
	if _, err := Archive(t.Context(), upper, io.Discard, Options{MaxBytes: -1}); err == nil {
		t.Error("Archive with a negative budget succeeded")
	}
}

// TestChangedWhileRead shrinks one file and grows another after their
// headers are written: the tar stays readable, each holds the size of its
// header (the shrunk one padded with zeros), both are marked Changed, and
// the hashes are of the bytes in the tar.
func TestChangedWhileRead(t *testing.T) {
	t.Parallel()
	upper := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB, four reads of 4 KiB
	must(t, os.WriteFile(filepath.Join(upper, "grows"), big, 0o644))
	must(t, os.WriteFile(filepath.Join(upper, "shrinks"), big, 0o644))
	must(t, os.WriteFile(filepath.Join(upper, "stays"), []byte("same"), 0o644))

	fd, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(t, err)
	var st unix.Stat_t
	must(t, unix.Fstat(fd, &st))
	opts, err := Options{}.withDefaults()
	must(t, err)
	var buf bytes.Buffer
	a := &archiver{ctx: t.Context(), tw: tar.NewWriter(&buf), opts: opts, dev: st.Dev, buf: make([]byte, 4096)}
	a.afterHeader = func(p string) {
		switch p {
		case "grows":
			f, err := os.OpenFile(filepath.Join(upper, p), os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			_, err = f.Write([]byte("more"))
			must(t, err)
			must(t, f.Close())
		case "shrinks":
			must(t, os.Truncate(filepath.Join(upper, p), 5000))
		}
	}
	must(t, a.dir(fd, "", 0)) // closes fd
	must(t, a.tw.Close())

	shrunk := append(append([]byte{}, big[:5000]...), make([]byte, len(big)-5000)...)
	want := map[string]string{"grows": string(big), "shrinks": string(shrunk), "stays": "same"}
	got := map[string]string{}
	for _, e := range readTar(t, buf.Bytes()) {
		got[e.Name] = e.Body
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tar bodies (-want +got):\n%s", diff)
	}
	changed := map[string]bool{}
	for _, f := range a.sum.Files {
		changed[f.Path] = f.Changed
		if f.SHA256 != sha(want[f.Path]) {
			t.Errorf("%s: sha256 %s; the bytes in the tar have %s", f.Path, f.SHA256, sha(want[f.Path]))
		}
	}
	if diff := cmp.Diff(map[string]bool{"grows": true, "shrinks": true, "stays": false}, changed); diff != "" {
		t.Errorf("Changed (-want +got):\n%s", diff)
	}
}

// TestMounts mounts a tmpfs on a directory of upper and binds a file from
// it over a file of upper, as the node might: neither is the container's
// writing, both are skipped unread.
func TestMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	t.Parallel()
	upper := t.TempDir()
	mnt := filepath.Join(upper, "mnt")
	must(t, os.Mkdir(mnt, 0o755))
	must(t, os.WriteFile(filepath.Join(upper, "bound"), []byte("placeholder"), 0o644))
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mounting a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) })
	const hidden = "on another file system"
	must(t, os.WriteFile(filepath.Join(mnt, "f"), []byte(hidden), 0o644))
	must(t, unix.Mount(filepath.Join(mnt, "f"), filepath.Join(upper, "bound"), "", unix.MS_BIND, ""))
	t.Cleanup(func() { _ = unix.Unmount(filepath.Join(upper, "bound"), unix.MNT_DETACH) })

	var buf bytes.Buffer
	got, err := Archive(t.Context(), upper, &buf, Options{})
	must(t, err)
	if bytes.Contains(buf.Bytes(), []byte(hidden)) || len(readTar(t, buf.Bytes())) != 0 {
		t.Errorf("the tar holds %v; want nothing from the mounts", readTar(t, buf.Bytes()))
	}
	want := []Skipped{
		{Path: "bound", Type: TypeFile, Size: int64(len(hidden)), Reason: ReasonMount},
		{Path: "mnt", Type: TypeDir, Reason: ReasonMount},
	}
	if diff := cmp.Diff(want, got.Skipped); diff != "" {
		t.Errorf("Summary.Skipped (-want +got):\n%s", diff)
	}
}

// TestTooManyNames lists a directory of more names than could be archived
// or listed: it is named as cut short, and the walk still bounds what it
// writes.
func TestTooManyNames(t *testing.T) {
	t.Parallel()
	upper := t.TempDir()
	for i := range 2100 {
		must(t, os.WriteFile(filepath.Join(upper, strings.Repeat("n", 1+i%7)+string(rune('a'+i%26))+strconv.Itoa(i)), nil, 0o644))
	}
	got, err := Archive(t.Context(), upper, io.Discard, Options{MaxEntries: 5, MaxSkipped: 5})
	must(t, err)
	if len(got.Files) != 5 || len(got.Skipped) != 5 || got.Skipped[0].Path != "." || got.Skipped[0].Reason != ReasonTooMany {
		t.Errorf("files %d, skipped %+v; want 5 files, 5 skipped, the first the directory cut short", len(got.Files), got.Skipped)
	}
	// Names are read 1024 at a time: the walk saw at most 2048 of 2100.
	if n := len(got.Files) + len(got.Skipped) - 1 + got.SkippedUnlisted; n > 2048 {
		t.Errorf("walked %d names; want at most 2048, the listing cut short", n)
	}
}
