package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
)

// TestExitCodeFileErrors: a file kir cannot read or write is a failure of
// its own, not an unreachable API server, although the syscall.Errno
// inside satisfies net.Error.
func TestExitCodeFileErrors(t *testing.T) {
	_, openErr := os.Open("/nonexistent/kir")
	_, dialErr := net.Dial("tcp", "127.0.0.1:1")
	for _, tt := range []struct {
		name string
		err  error
		want int
	}{
		{"open", fmt.Errorf("reading key: %w", openErr), ExitFailure},
		{"rename", &os.LinkError{Op: "rename", Old: "a", New: "b", Err: os.ErrExist}, ExitFailure},
		{"dial", fmt.Errorf("connecting: %w", dialErr), ExitUnreachable},
		{"deadline", fmt.Errorf("listing: %w", context.DeadlineExceeded), ExitUnreachable},
		{"usage", usageError{errors.New("bad flag")}, ExitUsage},
	} {
		if got := ExitCode(tt.err); got != tt.want {
			t.Errorf("%s: ExitCode(%v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}
