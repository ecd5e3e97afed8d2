package volatile_test

import (
	"errors"
	"testing"

	"kir.dev/kir/agent/volatile"
)

// TestScanBudgets: a pod that forks thousands of processes holding
// thousands of descriptors cannot make the scan unbounded: it stops at
// MaxProcesses (saying so) and keeps at most MaxTotalFDs descriptors and
// about MaxTotalCmdlineBytes of command lines in all.
func TestScanBudgets(t *testing.T) {
	all := func([]byte) bool { return true } // every process of this machine: dozens
	procs, err := volatile.Processes(t.Context(), "/proc", all, volatile.Options{MaxProcesses: 3})
	if !errors.Is(err, volatile.ErrTooManyProcesses) || len(procs) != 3 {
		t.Fatalf("MaxProcesses 3: %d processes, err %v; want 3 and ErrTooManyProcesses", len(procs), err)
	}

	procs, err = volatile.Processes(t.Context(), "/proc", all, volatile.Options{MaxTotalFDs: 5, MaxTotalCmdlineBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	fds, truncated := 0, 0
	for _, p := range procs {
		fds += len(p.FDs)
		if p.FDsTruncated {
			truncated++
		}
		n := 0
		for _, a := range p.Cmdline {
			n += len(a) + 1
		}
		if n > 256+1 {
			t.Errorf("PID %d kept %d command-line bytes past the scan's budget", p.PID, n)
		}
	}
	if fds > 5 || truncated == 0 {
		t.Errorf("MaxTotalFDs 5: %d descriptors kept, %d processes marked truncated; want at most 5, some truncated", fds, truncated)
	}
}
