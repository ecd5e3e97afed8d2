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
	out := io.MultiWriter(a.tw, sum)
	if _, err := out.Write(a.buf[:first]); err != nil {
		return fatal{err}
	}
	n := int64(first)
	short := rerr != nil
	for n < now.Size && !short {
		if err := a.ctx.Err(); err != nil {
			return fatal{err}
		}
		m, err := f.Read(a.buf[:min(int64(len(a.buf)), now.Size-n)])
		if m > 0 {
			if _, werr := out.Write(a.buf[:m]); werr != nil {
				return fatal{werr}
			}
			n += int64(m)
		}
		if err != nil {
			// EOF (it shrank) or a read error after the header: pad.
			short = true
		}
	}
	if n < now.Size {
		clear(a.buf)
		for n < now.Size {
			m := min(int64(len(a.buf)), now.Size-n)
			if _, err := out.Write(a.buf[:m]); err != nil {
				return fatal{err}
			}
			n += m
		}
		entry.Changed = true
	} else {
		var after unix.Stat_t
		if unix.Fstat(fd, &after) == nil && after.Size != now.Size {
			entry.Changed = true
		}
	}
	entry.SHA256 = hex.EncodeToString(sum.Sum(nil))
	a.sum.Bytes += n
	a.sum.Files = append(a.sum.Files, entry)
	return nil
}
