package cli

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"kir.dev/kir/internal/journal"
)

// killEnv names a testing hook: KIR_TEST_KILL_AFTER=TYPE:STEP[#N] makes kir
// SIGKILL itself right after it durably records that journal record (e.g.
// step-finished:isolate), or the Nth such record (step-note:issue#2), so
// that tests can prove a killed run resumes correctly. Never set it outside
// tests.
const killEnv = "KIR_TEST_KILL_AFTER"

func testHook() func(journal.Record) {
	target := os.Getenv(killEnv)
	if target == "" {
		return nil
	}
	target, nth, _ := strings.Cut(target, "#")
	n, _ := strconv.Atoi(nth)
	typ, step, _ := strings.Cut(target, ":")
	var seen atomic.Int32
	return func(rec journal.Record) {
		if rec.Type != typ {
			return
		}
		var d struct {
			Name string `json:"name"`
		}
		if step != "" && (json.Unmarshal(rec.Data, &d) != nil || d.Name != step) {
			return
		}
		if int(seen.Add(1)) < n {
			return
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}
