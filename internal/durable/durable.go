// Package durable holds the one file-system step that kir's journals and
// evidence bundles both need to make a new file survive a crash.
package durable

import (
	"fmt"
	"os"
)

// SyncDir fsyncs a directory, making the entries created in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return d.Close()
}
