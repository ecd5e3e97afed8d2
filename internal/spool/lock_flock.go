package spool

import (
	"errors"
	"os"

	"kir.dev/kir/internal/flock"
)

// tryLock takes an exclusive flock(2) on f without waiting, and returns
// ErrLocked if another Open holds it. Without flock(2) it fails: two
// processes could append to the same segment and interleave their frames.
func tryLock(f *os.File) error {
	err := flock.TryLock(f, true)
	if errors.Is(err, flock.ErrLocked) {
		return ErrLocked
	}
	return err
}

// unlock drops the lock before f is closed, so that a child forked in
// between does not keep it.
func unlock(f *os.File) error { return flock.Unlock(f) }
