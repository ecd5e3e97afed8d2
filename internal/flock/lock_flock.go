//go:build unix && !aix && !solaris

package flock

import (
	"errors"
	"os"
	"syscall"
)

// TryLock takes a lock on f, shared or exclusive, without waiting. It
// returns ErrLocked if a conflicting lock is held.
func TryLock(f *os.File, exclusive bool) error {
	how := syscall.LOCK_SH | syscall.LOCK_NB
	if exclusive {
		how = syscall.LOCK_EX | syscall.LOCK_NB
	}
	err := flock(f, how)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	return err
}

// Unlock drops the lock on f. Closing f alone is not enough while the
// process forks: between fork and exec the child shares f's open file
// description, and with it the lock.
func Unlock(f *os.File) error {
	return flock(f, syscall.LOCK_UN)
}

// flock calls flock(2) on f, again when a signal interrupts it.
func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			lerr = syscall.Flock(int(fd), how)
			if !errors.Is(lerr, syscall.EINTR) {
				return
			}
		}
	}); err != nil {
		return err
	}
	if lerr != nil {
		return &os.PathError{Op: "flock", Path: f.Name(), Err: lerr}
	}
	return nil
}
