//go:build !kirtest

package cli

import "kir.dev/kir/playbooks"

// testHook is nil in the kir that ships: the SIGKILL hook tests use is
// compiled only with the kirtest build tag (hook_kirtest.go).
func testHook() func(playbooks.Recorded) { return nil }
