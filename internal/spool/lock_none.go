//go:build !unix || aix || solaris

package spool

import (
	"errors"
	"os"
)

// tryLock fails: without flock(2), two processes could append to the same
// segment and interleave their frames.
func tryLock(f *os.File) error {
	return &os.PathError{Op: "flock", Path: f.Name(), Err: errors.ErrUnsupported}
}

func unlock(f *os.File) error { return nil }
