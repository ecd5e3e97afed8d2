//go:build kirtest

package cli

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"kir.dev/kir/playbooks"
)

// killEnv names a testing hook, compiled only into test builds of kir (the
// kirtest build tag; internal/kubetest builds kir that way):
// KIR_TEST_KILL_AFTER=TYPE:STEP[#N] makes kir SIGKILL itself right after it
// durably records that journal record (e.g. step-finished:isolate), or the
// Nth such record (step-note:issue#2), so that tests can prove a killed run
// resumes correctly. The kir binary that ships has no such hook.
const killEnv = "KIR_TEST_KILL_AFTER"

func testHook() func(playbooks.Recorded) {
	target := os.Getenv(killEnv)
	if target == "" {
		return nil
	}
	target, nth, _ := strings.Cut(target, "#")
	n, _ := strconv.Atoi(nth)
	typ, step, _ := strings.Cut(target, ":")
	var seen atomic.Int32
	return func(rec playbooks.Recorded) {
		if rec.Type != typ || (step != "" && rec.Step != step) {
			return
		}
		if int(seen.Add(1)) < n {
			return
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}
