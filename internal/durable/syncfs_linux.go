//go:build linux

package durable

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// SyncFS makes everything written to the file system that holds path
// durable, files and directories alike, with one syncfs(2): one journal
// commit for a whole step's files instead of one per fsync. It returns
// ErrUnsupported where the system has no syncfs.
func SyncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncing the file system of %s: %w", path, err)
	}
	return nil
}
