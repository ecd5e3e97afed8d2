package spool

import (
	"errors"
	"os"
	"syscall"
)

// datasync is fdatasync(2): it skips the inode metadata that fsync would
// also flush but that no reader needs (timestamps), and still flushes the
// file size, without which appended data could not be read back.
func datasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if !errors.Is(serr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
