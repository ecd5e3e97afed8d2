package kubetest

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ProcCPU is the CPU time used so far by each process on the machine, by
// PID: a kernel worker renames itself with the work it does. Benchmarks
// use it to say where a run's time went: every process here (the control
// plane, kir, the benchmark) shares the machine's cores.
type ProcCPU map[string]ProcTime

// ProcTime is one process's name and CPU time (user and system).
type ProcTime struct {
	Name string
	CPU  time.Duration
}

// CPUTimes reads /proc/*/stat. Processes that exit in between are missed,
// which is fine for the long-lived processes it measures.
func CPUTimes() ProcCPU {
	const ticksPerSecond = 100 // USER_HZ on Linux
	out := ProcCPU{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		raw, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(raw)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(s[end+1:]) // f[0] is the state; utime, stime are fields 14, 15
		if len(f) < 13 {
			continue
		}
		user, _ := strconv.Atoi(f[11])
		system, _ := strconv.Atoi(f[12])
		out[e.Name()] = ProcTime{s[open+1 : end], time.Duration(user+system) * time.Second / ticksPerSecond}
	}
	return out
}

// Since returns the CPU time each process name used since before.
func (c ProcCPU) Since(before ProcCPU) CPUByName {
	out := CPUByName{}
	for pid, t := range c {
		if d := t.CPU - before[pid].CPU; d > 0 {
			out[t.Name] += d
		}
	}
	return out
}

// CPUByName is CPU time by process name (the kernel's comm: at most 15
// bytes).
type CPUByName map[string]time.Duration

// Total is the CPU time of all the processes.
func (c CPUByName) Total() time.Duration {
	var t time.Duration
	for _, v := range c {
		t += v
	}
	return t
}

// String lists the processes, most CPU first, those under 10 ms left out.
func (c CPUByName) String() string {
	names := slices.SortedFunc(maps.Keys(c), func(a, b string) int { return int(c[b] - c[a]) })
	var sb strings.Builder
	for _, n := range names {
		if c[n] >= 10*time.Millisecond {
			fmt.Fprintf(&sb, "%s %s, ", n, c[n].Round(time.Millisecond))
		}
	}
	return strings.TrimSuffix(sb.String(), ", ")
}
