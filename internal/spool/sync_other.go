//go:build !linux

package spool

import "os"

// datasync is File.Sync where fdatasync(2) is not available; on macOS that
// is F_FULLFSYNC, which also flushes the drive's cache.
func datasync(f *os.File) error { return f.Sync() }
