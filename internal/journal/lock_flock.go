package journal

import (
	"errors"
	"os"

	"kir.dev/kir/internal/flock"
)

// tryLock takes a flock(2) on f without waiting, and returns ErrLocked if a
// conflicting lock is held. Without flock(2) it fails: one writer per
// journal cannot be guaranteed, and appending without that guarantee could
// fork the chain.
func tryLock(f *os.File, exclusive bool) error {
	err := flock.TryLock(f, exclusive)
	if errors.Is(err, flock.ErrLocked) {
		return ErrLocked
	}
	return err
}

// unlock drops the lock before the file is closed: a child forked in
// between (os/exec) holds the descriptor until it execs, and with it a
// lock that closing alone would leave behind for that moment.
func unlock(f *os.File) { _ = flock.Unlock(f) }
