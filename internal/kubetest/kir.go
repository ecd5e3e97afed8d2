package kubetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var kirBuild struct {
	once sync.Once
	path string
	err  error
}

// KirBinary returns the path of kir built from this checkout, once per test
// process: with the kirtest build tag, which compiles in the hook tests use
// to SIGKILL kir after a given journal record (KIR_TEST_KILL_AFTER), and
// with the race detector when this test binary has it. Tests that must run
// kir as a real process — kill it, or run it beside another — use it. The
// binary lives in a kubetest-<pid>-* directory, which a later Start sweeps
// once this process is gone.
func KirBinary(t testing.TB) string {
	t.Helper()
	kirBuild.once.Do(func() { kirBuild.path, kirBuild.err = buildKir() })
	if kirBuild.err != nil {
		t.Fatalf("building kir: %v", kirBuild.err)
	}
	return kirBuild.path
}

func buildKir() (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	dir, err := os.MkdirTemp(baseDir(), fmt.Sprintf("kubetest-%d-kir-", os.Getpid()))
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "kir")
	// The tags of the shipped build (Makefile's BUILDFLAGS) plus kirtest.
	args := []string{"build", "-trimpath", "-tags", "kustomize_disable_go_plugin_support,kirtest", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "./cmd/kir")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}
