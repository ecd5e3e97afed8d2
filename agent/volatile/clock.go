//go:build linux

package volatile

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
	"unsafe"
)

// atClkTck is AT_CLKTCK, the auxiliary vector entry holding USER_HZ.
const atClkTck = 17

// defaultHZ is USER_HZ on every architecture Linux supports.
const defaultHZ = 100

// clock turns a start time in ticks since boot into a wall-clock time.
type clock struct {
	btime int64
	hz    uint64
}

func newClock(procRoot string) (clock, error) {
	path := filepath.Join(procRoot, "stat")
	b, err := os.ReadFile(path)
	if err != nil {
		return clock{}, fmt.Errorf("reading the boot time: %w", err)
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			bt, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return clock{}, fmt.Errorf("reading the boot time: %s: btime: %w", path, err)
			}
			return clock{btime: bt, hz: userHZ()}, nil
		}
	}
	return clock{}, fmt.Errorf("reading the boot time: %s: no btime line", path)
}

func (c clock) wall(ticks uint64) time.Time {
	return time.Unix(c.btime+int64(ticks/c.hz), int64(ticks%c.hz*uint64(time.Second)/c.hz))
}

// userHZ reads AT_CLKTCK from the agent's own auxiliary vector (pairs of
// native words), as sysconf(_SC_CLK_TCK) does; it is the kernel's, the
// same for every process.
func userHZ() uint64 {
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return defaultHZ
	}
	const w = int(unsafe.Sizeof(uintptr(0)))
	for i := 0; i+2*w <= len(b); i += 2 * w {
		key, val := word(b[i:], w), word(b[i+w:], w)
		if key == atClkTck && val > 0 {
			return val
		}
	}
	return defaultHZ
}

func word(b []byte, w int) uint64 {
	if w == 4 {
		return uint64(binary.NativeEndian.Uint32(b))
	}
	return binary.NativeEndian.Uint64(b)
}
