//go:build linux

package volatile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrTooLarge means an executable is larger than the bound it was to be
// read within.
var ErrTooLarge = errors.New("executable larger than the bound")

// ErrGone means the process exited, or its PID now names another process.
var ErrGone = errors.New("process gone")

// ErrExeChanged means the process runs another executable than the one
// scanned (it called execve since).
var ErrExeChanged = errors.New("the process runs another executable than the one scanned")

// fileKey names a file by device, inode, size and change time, so that
// processes running one binary have it hashed once per scan.
type fileKey struct {
	dev, ino uint64
	size     int64
	ctime    unix.Timespec
}

type exeHash struct {
	dev, ino          uint64
	deleted, tooLarge bool
	size              int64
	sum               string
}

// hashExe hashes the file at path (a /proc/PID/exe link) if it is within
// the bound.
func (r *reader) hashExe(ctx context.Context, path string) (exeHash, error) {
	f, err := os.Open(path)
	if err != nil {
		return exeHash{}, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return exeHash{}, err
	}
	key := fileKey{st.Dev, st.Ino, st.Size, st.Ctim}
	if h, ok := r.hashes[key]; ok {
		return h, nil
	}
	h := exeHash{dev: st.Dev, ino: st.Ino, deleted: st.Nlink == 0, size: st.Size, tooLarge: st.Size > r.opts.MaxHashBytes}
	if !h.tooLarge {
		sum := sha256.New()
		n, err := copyBounded(ctx, sum, f, r.opts.MaxHashBytes)
		switch {
		case errors.Is(err, ErrTooLarge):
			h.tooLarge = true // it grew under us
		case err != nil:
			return exeHash{}, err
		default:
			h.size, h.sum = n, hex.EncodeToString(sum.Sum(nil))
		}
	}
	r.hashes[key] = h
	return h, nil
}

// CopyExe writes the bytes of process p's executable to w, read through
// /proc/PID/exe under procRoot — the only way left to a binary deleted from
// disk — and returns how many it wrote and their hex SHA-256. An
// executable larger than max is not copied (ErrTooLarge, nothing written);
// one that grows past max while read fails with ErrTooLarge after max
// bytes were written. If p's PID now names another process (its start time
// changed), CopyExe fails with ErrGone, and if it runs another file than
// the one scanned (p.ExeDevice, p.ExeInode) with ErrExeChanged; it writes
// nothing then.
func CopyExe(ctx context.Context, procRoot string, p Process, w io.Writer, max int64) (int64, string, error) {
	dir := filepath.Join(procRoot, strconv.Itoa(p.PID))
	f, err := os.Open(filepath.Join(dir, "exe"))
	if err != nil {
		return 0, "", fmt.Errorf("copying the executable of process %d: %w", p.PID, err)
	}
	defer f.Close()
	// Opened first, checked after: if the PID still names the same process
	// now, the file opened is that process's.
	if st, err := readStat(dir); err != nil || st.start != p.StartTicks {
		return 0, "", fmt.Errorf("copying the executable of process %d: %w", p.PID, ErrGone)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, "", fmt.Errorf("copying the executable of process %d: %w", p.PID, err)
	}
	if p.ExeInode != 0 && (st.Dev != p.ExeDevice || st.Ino != p.ExeInode) {
		return 0, "", fmt.Errorf("copying the executable of process %d: %w", p.PID, ErrExeChanged)
	}
	if st.Size > max {
		return 0, "", fmt.Errorf("copying the executable of process %d (%d bytes, bound %d): %w", p.PID, st.Size, max, ErrTooLarge)
	}
	sum := sha256.New()
	n, err := copyBounded(ctx, io.MultiWriter(w, sum), f, max)
	if err != nil {
		return n, "", fmt.Errorf("copying the executable of process %d: %w", p.PID, err)
	}
	return n, hex.EncodeToString(sum.Sum(nil)), nil
}

// copyBounded copies r to w, at most max bytes, checking ctx between
// chunks; ErrTooLarge if r holds more.
func copyBounded(ctx context.Context, w io.Writer, r io.Reader, max int64) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, err := r.Read(buf[:min(int64(len(buf)), max-n+1)])
		if int64(k) > max-n {
			k = int(max - n)
			if _, werr := w.Write(buf[:k]); werr != nil {
				return n, werr
			}
			return n + int64(k), ErrTooLarge
		}
		if _, werr := w.Write(buf[:k]); werr != nil {
			return n, werr
		}
		n += int64(k)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
