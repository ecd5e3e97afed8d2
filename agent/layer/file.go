//go:build linux

package layer

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// file archives the regular file name of dirfd, at p.
func (a *archiver) file(dirfd int, p, name string, st *unix.Stat_t) error {
	if st.Size > a.opts.MaxBytes-a.sum.Bytes {
		a.skip(p, TypeFile, st.Size, ReasonBudget, nil)
		return nil
	}
	// O_NONBLOCK: a FIFO swapped in is not waited for (and fails same).
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		a.skip(p, TypeFile, st.Size, ReasonChanged, err)
		return nil
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	if err := same(fd, st); err != nil {
		a.skip(p, TypeFile, st.Size, ReasonChanged, err)
		return nil
	}
	// Headers and budget from the open file's own stat: what is read.
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil {
		a.skip(p, TypeFile, st.Size, ReasonReadFail, err)
		return nil
	}
	if now.Size > a.opts.MaxBytes-a.sum.Bytes {
		a.skip(p, TypeFile, now.Size, ReasonBudget, nil)
		return nil
	}
	// A read error before the header is written skips the file cleanly:
	// read the first block first.
	first, rerr := io.ReadFull(f, a.buf[:min(int64(len(a.buf)), now.Size)])
	if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
		a.skip(p, TypeFile, now.Size, ReasonReadFail, rerr)
		return nil
	}
	h, entry := header(p, &now)
	h.Typeflag, h.Size = tar.TypeReg, now.Size
	entry.Type, entry.Size = TypeFile, now.Size
	entry.WhiteoutName = isWhiteoutName(name)
	if err := a.write(h); err != nil {
		return err
	}
	if a.afterHeader != nil {
		a.afterHeader(p)
	}
	sum := sha256.New()
	n, padded, err := a.body(io.MultiWriter(a.tw, sum), f, first, rerr != nil, now.Size)
	if err != nil {
		return err
	}
	var after unix.Stat_t
	if padded || (unix.Fstat(fd, &after) == nil && after.Size != now.Size) {
		entry.Changed = true
	}
	entry.SHA256 = hex.EncodeToString(sum.Sum(nil))
	a.sum.Bytes += n
	a.sum.Files = append(a.sum.Files, entry)
	return nil
}

// body writes a file's bytes to out after the header: the first block,
// already in a.buf, then the rest of f up to size, then zeros if f ended
// early (it shrank, or failed to read) — the header promised size bytes.
func (a *archiver) body(out io.Writer, f *os.File, first int, short bool, size int64) (n int64, padded bool, err error) {
	if _, err := out.Write(a.buf[:first]); err != nil {
		return 0, false, fatal{err}
	}
	n = int64(first)
	for n < size && !short {
		if err := a.ctx.Err(); err != nil {
			return n, false, fatal{err}
		}
		m, rerr := f.Read(a.buf[:min(int64(len(a.buf)), size-n)])
		if m > 0 {
			if _, err := out.Write(a.buf[:m]); err != nil {
				return n, false, fatal{err}
			}
			n += int64(m)
		}
		short = rerr != nil
	}
	if n == size {
		return n, false, nil
	}
	clear(a.buf)
	for n < size {
		m := min(int64(len(a.buf)), size-n)
		if _, err := out.Write(a.buf[:m]); err != nil {
			return n, true, fatal{err}
		}
		n += m
	}
	return n, true, nil
}
