//go:build unix && !aix && !solaris

package journal

import (
	"errors"
	"os"
	"syscall"
)

// tryLock takes a flock(2) on f without waiting, and returns ErrLocked if a
// conflicting lock is held. flock locks belong to the open file description,
// so two opens in one process conflict too, and the kernel drops them when
// the last descriptor closes, including when the process dies.
func tryLock(f *os.File, exclusive bool) error {
	how := syscall.LOCK_SH | syscall.LOCK_NB
	if exclusive {
		how = syscall.LOCK_EX | syscall.LOCK_NB
	}
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
	if errors.Is(lerr, syscall.EWOULDBLOCK) {
		return ErrLocked
	}
	if lerr != nil {
		return &os.PathError{Op: "flock", Path: f.Name(), Err: lerr}
	}
	return nil
}

// unlock drops the lock before the file is closed: a child forked in
// between (os/exec) holds the descriptor until it execs, and with it a
// lock that closing alone would leave behind for that moment.
func unlock(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _ = syscall.Flock(int(fd), syscall.LOCK_UN) })
	}
}
