//go:build !unix || aix || solaris

package flock

import (
	"errors"
	"os"
)

// TryLock fails with errors.ErrUnsupported: without flock(2) there is no
// lock that the kernel drops when its holder dies.
func TryLock(f *os.File, exclusive bool) error {
	return &os.PathError{Op: "flock", Path: f.Name(), Err: errors.ErrUnsupported}
}

// Unlock does nothing: TryLock never took a lock.
func Unlock(*os.File) error { return nil }
