//go:build !linux

package spool_test

// maxRSS is not measured here: getrusage's unit differs across systems.
func maxRSS() (int64, bool) { return 0, false }
