// Package flock takes and drops flock(2) locks without waiting, for the
// files that let one writer at a time at kir's journals and its alert
// spool.
//
// A flock lock belongs to the open file description, so two opens in one
// process conflict too, and the kernel drops it when the last descriptor
// closes, including when the process dies: a killed writer never blocks
// the next. Where there is no flock(2) (Windows, AIX, Solaris), TryLock
// fails with errors.ErrUnsupported rather than let two writers in.
package flock
