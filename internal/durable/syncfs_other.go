//go:build !linux

package durable

import "errors"

// SyncFS is syncfs(2) where the system has it; here it has not: callers
// fsync each file and directory instead.
func SyncFS(string) error { return errors.ErrUnsupported }
