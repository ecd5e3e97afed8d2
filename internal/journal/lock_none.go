//go:build !unix || aix || solaris

package journal

import (
	"errors"
	"os"
)

// tryLock fails: without flock(2), one writer per journal cannot be
// guaranteed, and appending without that guarantee could fork the chain.
func tryLock(f *os.File, exclusive bool) error {
	return &os.PathError{Op: "flock", Path: f.Name(), Err: errors.ErrUnsupported}
}

func unlock(*os.File) {}
