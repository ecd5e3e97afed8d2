package flock

import "errors"

// ErrLocked is returned by TryLock while a conflicting lock is held, in
// this process or another.
var ErrLocked = errors.New("file is locked")
