package spool_test

import "syscall"

// maxRSS returns the peak resident set size of the process, in bytes.
func maxRSS() (int64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return ru.Maxrss << 10, true // Linux reports KiB
}
